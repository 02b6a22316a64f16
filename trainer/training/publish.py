"""Publishing a finished run: the best weights, saved with their manifest as the emotion's model.

The model is written to a staging folder and swapped in whole (trainer/common/atomic.py), so a
failure leaves the previous model of the emotion as it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.atomic import atomic_path, staged_dir
from trainer.common.bases import base_identity
from trainer.common.errors import PoetstudioError, first_line
from trainer.common.home import DataHome
from trainer.common.perplexity import perplexity
from trainer.training.checkpoint import copy_weights
from trainer.training.config import TrainConfig
from trainer.training.manifest import build_manifest, write_manifest
from trainer.training.start import StartPoint, attention_of

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

BEST_FILE = "best.safetensors"


def save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Write `weights` (name -> tensor) as one safetensors file, atomically."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp))


def finish(
    config: TrainConfig,
    home: DataHome,
    job_dir: Path,
    model: Any,  # a transformers model or peft's wrapper around one
    tokenizer: PreTrainedTokenizerBase,
    start: StartPoint,
    dataset: dict[str, Any],
    *,
    steps: int,
    best_loss: float,
    best_step: int,
    reason: str,
    wall: float,
    device: str,
    world_size: int = 1,
) -> Path:
    """Load the best weights and save the finished model into `<home>/models/<emotion>/`.

    The model is written to a staging folder first and swapped in whole, so a failure (a full
    disk, a crash) leaves the previous model of this emotion untouched.
    """
    from safetensors.torch import load_file

    final = home.models / config.emotion
    kept = "the previous model is intact" if final.exists() else "no model was replaced"
    if not math.isfinite(best_loss) or not (job_dir / BEST_FILE).is_file():
        # A model that never reached a finite validation loss learned nothing usable.
        raise PoetstudioError(
            f"validation loss never became finite, so the {config.emotion} model was not saved "
            f"and {kept}; try a lower --lr"
        )
    copy_weights(model, load_file(str(job_dir / BEST_FILE)))
    model.to("cpu")
    manifest = build_manifest(
        emotion=config.emotion,
        method=config.method,
        base=base_identity(start.base_spec, home),
        parent=start.parent,
        poem_tokens=start.tokens(tokenizer).as_dict(),
        dataset=dataset,
        hyperparameters=hyperparameters(config, model, world_size),
        best_val_loss=best_loss,
        best_val_ppl=perplexity(best_loss),
        steps=steps,
        best_step=best_step,
        stop_reason=reason,
        wall_time_s=wall,
        device=device,
        job_id=job_dir.name,
    )
    try:
        with staged_dir(final) as staged:
            write_model(model, tokenizer, staged, config.method, manifest["base"]["id"])
            write_manifest(staged, manifest)
    except PoetstudioError:
        raise  # says itself what happened to the previous model
    except Exception as exc:  # noqa: BLE001 - safetensors, torch and the OS fail in their own types
        # staged_dir removed its staging folder and left `final` as it was.
        raise PoetstudioError(
            f"could not save the {config.emotion} model ({_reason(exc)}); {kept} and the best "
            f"weights stay in {job_dir / BEST_FILE}"
        ) from None
    return final


def _reason(exc: BaseException) -> str:
    """One line saying why a save failed, whatever raised it."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return first_line(exc)


def write_model(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    method: str,
    base_id: str,
) -> None:
    """Save the weights as safetensors: a LoRA adapter, or a whole model with its tokenizer."""
    # An adapter names its base by the base's id, not by a folder on this machine.
    for adapter in getattr(model, "peft_config", {}).values():
        adapter.base_model_name_or_path = base_id
    model.save_pretrained(folder, safe_serialization=True)
    # An adapter is always loaded on its base, with the base's tokenizer; only a full model
    # needs its own copy, and leaving it out keeps adapters small.
    if method == "full":
        tokenizer.save_pretrained(folder)


def hyperparameters(config: TrainConfig, model: Any, world_size: int = 1) -> dict[str, Any]:
    """The settings that shaped the weights, for the manifest.

    LoRA's shape is read from the model itself: an adapter started from the neutral one keeps
    the neutral adapter's rank, whatever --lora-rank says.
    """
    keys: tuple[str, ...] = (
        "method",
        "batch_size",
        "block_size",
        "grad_accum",
        "epochs",
        "max_steps",
        "warmup",
    )
    keys += ("weight_decay", "clip", "eval_every", "patience", "seed", "max_words", "compile")
    found: dict[str, Any] = {key: getattr(config, key) for key in keys}
    found["precision"] = config.precision
    found["lr"] = config.learning_rate
    found["optimizer"] = "AdamW"
    found["schedule"] = "linear warm-up, linear decay"
    found["attention"] = attention_of(model)
    # The ranks the run ended on, and the blocks of one optimizer step over all of them.
    found["world_size"] = world_size
    found["global_batch"] = found["batch_size"] * config.grad_accum
    if config.method == "lora":
        lora = model.peft_config["default"]
        found.update(
            lora_rank=lora.r,
            lora_alpha=lora.lora_alpha,
            lora_dropout=lora.lora_dropout,
            lora_targets=sorted(lora.target_modules),
        )
    return found
