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
from pathlib import Path
from typing import Any

from trainer.common.atomic import aside_path, atomic_write_json, staged_dir
from trainer.common.bases import sha256_of
from trainer.common.errors import PoetstudioError

WEIGHTS = "weights.safetensors"
STATE = "state.pt"
META = "meta.json"


def save_checkpoint(folder: Path, weights: dict[str, Any], state: dict[str, Any]) -> None:
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
                "files": {name: sha256_of(staged / name) for name in (WEIGHTS, STATE)},
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
    first = text.splitlines()[0] if text else type(exc).__name__
    return PoetstudioError(f"could not write the checkpoint in {where}: {first}")


def find_checkpoint(folder: Path) -> Path | None:
    """The checkpoint at `folder`, or the previous one that a swap cut short by kill -9 left aside.

    replace_dir renames the old folder to `.<name>.old` before moving the new one in; a process
    killed between the two renames leaves only that one, whole.
    """
    if (folder / META).is_file():
        return folder
    aside = aside_path(folder)
    return aside if (aside / META).is_file() else None


def load_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
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
        if sha256_of(path) != expected.get(name):
            raise corrupt(f"{name} does not match its recorded sha256")
    try:
        weights = load_file(str(folder / WEIGHTS))
        state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure means the same to the user
        raise corrupt(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return weights, state
