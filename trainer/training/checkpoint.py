"""Training checkpoints: trainable weights, optimizer, scheduler, RNG states and data position.

A checkpoint is a folder written beside its final place and swapped in whole
(trainer/common/atomic.py), so a crash, even kill -9, leaves the previous checkpoint intact.
`meta.json` records a sha256 of each file, so a damaged checkpoint is refused on resume instead of
half-loaded. The state file is read with torch's weights-only unpickler, which loads tensors and
plain containers only.
"""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.atomic import aside_path, atomic_write_json, staged_dir
from trainer.common.errors import PoetstudioError, first_line
from trainer.common.hashing import sha256_file

if TYPE_CHECKING:
    import torch

# A job's checkpoint folder, inside the job's own folder.
CHECKPOINT_DIR = "checkpoint"
WEIGHTS = "weights.safetensors"
STATE = "state.pt"
META = "meta.json"


# The attribute torch.compile's wrapper keeps the original module under.
COMPILED_PREFIX = "_orig_mod"


def plain_name(name: str) -> str:
    """A parameter's name as the uncompiled model has it: compiled and plain runs share files."""
    return ".".join(part for part in name.split(".") if part != COMPILED_PREFIX)


def trainable_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters the optimizer updates, by plain name: what checkpoints and best files hold."""
    return {plain_name(name): p for name, p in model.named_parameters() if p.requires_grad}


def copy_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy saved `weights` (name -> tensor) into the model's trainable parameters."""
    import torch

    current = trainable_weights(model)
    with torch.no_grad():
        for name, tensor in weights.items():
            target = current[plain_name(name)]
            target.copy_(tensor.to(target.device))


def rng_state() -> dict[str, Any]:
    """All random states a resumed run must continue from."""
    import torch

    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    state["python_pos"] = random.getstate()[2]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write `weights` (name -> tensor) and `state` (tensors, numbers, lists, dicts) atomically."""
    import torch
    from safetensors.torch import save_file

    try:
        with staged_dir(folder) as staged:
            save_file(
                {name: t.detach().cpu().contiguous() for name, t in weights.items()},
                str(staged / WEIGHTS),
            )
            torch.save(state, staged / STATE)
            meta = {
                "step": state.get("step"),
                "files": {name: sha256_file(staged / name) for name in (WEIGHTS, STATE)},
            }
            atomic_write_json(staged / META, meta)
    except PoetstudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch and safetensors report a full disk their way
        raise write_error(exc, folder) from None


# How torch's zip writer, safetensors and the OS word a write that the disk refused.
_FULL_DISK = ("file write failed", "no space left", "enospc", "disk quota")


def write_error(exc: Exception, folder: Path) -> PoetstudioError:
    """A one-line error for a checkpoint that could not be written, saying why and where.

    torch.save reports a full disk as `RuntimeError: [enforce fail at inline_container.cc:...]
    ... file write failed`, and safetensors with its own error type: both are named for what
    they are. The staging folder is gone by now and the previous checkpoint is untouched.
    """
    where = folder.parent
    text = str(exc).strip()
    full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
        word in text.lower() for word in _FULL_DISK
    )
    if full:
        return PoetstudioError(
            f"no space left on device: could not write the checkpoint in {where}; free some "
            "space, then continue with --resume (the previous checkpoint is intact)"
        )
    if isinstance(exc, OSError):
        why = exc.strerror or text or type(exc).__name__
        name = f" ({exc.filename})" if exc.filename else ""
        return PoetstudioError(f"could not write the checkpoint in {where}: {why}{name}")
    return PoetstudioError(f"could not write the checkpoint in {where}: {first_line(exc)}")


def find_checkpoint(folder: Path) -> Path | None:
    """The checkpoint at `folder`, or the previous one that a swap cut short by kill -9 left aside.

    replace_dir renames the old folder to `.<name>.old` before moving the new one in; a process
    killed between the two renames leaves only that one, whole.
    """
    if (folder / META).is_file():
        return folder
    aside = aside_path(folder)
    return aside if (aside / META).is_file() else None


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint back as (weights, state); refuse a damaged one and leave it in place."""
    import torch
    from safetensors.torch import load_file

    def corrupt(why: str) -> PoetstudioError:
        return PoetstudioError(
            f"checkpoint {folder} is damaged ({why}); its files were left as they are. "
            "Start afresh without --resume, or restore the folder"
        )

    folder = find_checkpoint(folder) or folder
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        expected = meta["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise corrupt(f"unreadable {META}: {exc}") from None
    for name in (WEIGHTS, STATE):
        path = folder / name
        if not path.is_file():
            raise corrupt(f"{name} is missing")
        if sha256_file(path) != expected.get(name):
            raise corrupt(f"{name} does not match its recorded sha256")
    try:
        weights = {plain_name(name): t for name, t in load_file(str(folder / WEIGHTS)).items()}
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the same to the user
        raise corrupt(first_line(exc)) from None
    return weights, state
