"""The training loop: one readable function from a base model to a finished emotion model.

LoRA (default) and full fine-tuning share it: AdamW, linear warm-up then linear decay, gradient
clipping and accumulation, a seed, and 16-bit autocast where the hardware has it (bf16 on CUDA, or
fp16 with a GradScaler; bf16 on CPUs with native support; see trainer/common/precision.py). It
evaluates every `eval_every` steps and at each epoch end, keeps the best weights, stops early
when validation stops improving, and checkpoints periodically and on a stop request.

The data position is a pure function of the step: optimizer step `s` uses micro-batches
`s * grad_accum ...`, and micro-batch `m` takes blocks from epoch `m // batches_per_epoch`'s
permutation (seeded by seed and epoch). So a checkpoint needs only the step to resume exactly.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.common.atomic import atomic_path, staged_dir
from trainer.common.bases import base_identity, resolve_base
from trainer.common.device import pick_device
from trainer.common.emotions import NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.precision import training_dtype
from trainer.common.textformat import PoemTokens
from trainer.jobs.events import EVENTS_FILE, emit
from trainer.training.checkpoint import load_checkpoint, save_checkpoint
from trainer.training.config import DEFAULT_BASE, TrainConfig
from trainer.training.manifest import build_manifest, read_manifest, write_manifest
from trainer.training.packing import IGNORE, Packed, load_training_data

CHECKPOINT_DIR = "checkpoint"
BEST_FILE = "best.safetensors"
SMOOTHING = 0.9  # weight of the past in the smoothed loss

OnEvent = Callable[[dict[str, Any]], None]


@dataclass
class StartPoint:
    """Where a run starts: the raw base, and optionally the neutral model it builds on."""

    base_spec: str
    parent_dir: Path | None = None
    parent: dict[str, Any] | None = None  # the parent's manifest summary, for the lineage
    # The parent's recorded poem ids: a child keeps them, so the lineage stops where it learned to.
    poem_tokens: dict[str, Any] | None = None

    def tokens(self, tokenizer: Any) -> PoemTokens:
        """The poem ids this run trains with."""
        return PoemTokens.recorded({"poem_tokens": self.poem_tokens}, tokenizer)


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # "done" or "stopped"
    step: int
    model_dir: Path | None = None
    best_val_loss: float | None = None


def plan_start(config: TrainConfig, home: DataHome) -> StartPoint:
    """Decide the base and parent: neutral starts from the base; other emotions from neutral.

    An emotion starts from the user's neutral model when one exists, was trained on the same base,
    and can seed this method: a neutral LoRA seeds a LoRA (its weights are the starting point, so
    the new adapter still applies to the raw base) or a full fine-tune (merged first); a full
    neutral model seeds only a full fine-tune.
    """
    if config.emotion == NEUTRAL or config.from_base:
        return StartPoint(config.base or DEFAULT_BASE)
    neutral_dir = home.models / NEUTRAL
    manifest = read_manifest(neutral_dir)
    if manifest is None:
        return StartPoint(config.base or DEFAULT_BASE)
    neutral_base = str(manifest.get("base", {}).get("spec", ""))
    base_spec = config.base or neutral_base or DEFAULT_BASE
    same_base = base_identity(base_spec, home)["spec"] == base_identity(neutral_base, home)["spec"]
    usable = manifest.get("method") == "lora" or config.method == "full"
    if not (same_base and usable and neutral_base):
        return StartPoint(base_spec)
    parent = {
        "emotion": NEUTRAL,
        "method": manifest.get("method"),
        "job": manifest.get("job"),
        "best_val_loss": manifest.get("metrics", {}).get("best_val_loss"),
        "parent": manifest.get("parent"),
    }
    return StartPoint(base_spec, neutral_dir, parent, manifest.get("poem_tokens"))


def load_model(config: TrainConfig, start: StartPoint, home: DataHome) -> tuple[Any, Any]:
    """Load tokenizer and model for training in fp32, with LoRA adapters when asked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_base(start.base_spec, home)
    parent_method = (start.parent or {}).get("method")
    if parent_method == "full":
        source = str(start.parent_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoetstudioError(f"cannot load base model {start.base_spec!r}: {first}") from None
    if tokenizer.eos_token_id is None:
        raise PoetstudioError(f"base {start.base_spec!r} has no eos token; poems need one to end")
    if parent_method == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model, str(start.parent_dir), is_trainable=config.method == "lora"
        )
        if config.method == "full":
            model = model.merge_and_unload()
    elif config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.alpha,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return tokenizer, model


def trainable_weights(model: Any) -> dict[str, Any]:
    """The parameters the optimizer updates, by name: what checkpoints and best weights hold."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


class Batches:
    """Micro-batches by index: micro-batch `m` of a seeded, per-epoch permutation of the blocks."""

    def __init__(self, data: Packed, batch_size: int, seed: int, device: str) -> None:
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.per_epoch = math.ceil(data.blocks / batch_size)
        self._epoch = -1
        self._order: Any = None
        if device.startswith("cuda"):
            # Pinned host memory lets copies to the GPU overlap with compute.
            pinned = (data.input_ids.pin_memory(), data.labels.pin_memory())
            self.data = Packed(*pinned, data.content_tokens, data.poems)

    def get(self, micro: int) -> tuple[Any, Any]:
        """Input ids and labels of micro-batch `micro`, on the device."""
        import torch

        epoch, position = divmod(micro, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            self._order = torch.randperm(self.data.blocks, generator=generator)
            self._epoch = epoch
        rows = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        ids = self.data.input_ids.index_select(0, rows)
        labels = self.data.labels.index_select(0, rows)
        if self.device.startswith("cuda"):
            ids, labels = ids.pin_memory(), labels.pin_memory()
        return (
            ids.to(self.device, non_blocking=True),
            labels.to(self.device, non_blocking=True),
        )


def evaluate(model: Any, data: Packed, batch_size: int, device: str, dtype: Any) -> float:
    """Mean validation loss per real token (padding excluded)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, data.blocks, batch_size):
            ids = data.input_ids[start : start + batch_size].to(device)
            labels = data.labels[start : start + batch_size].to(device)
            with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                logits = model(input_ids=ids).logits.float()
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]),
                targets.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
            total += float(loss)
            count += int((targets != IGNORE).sum())
    model.train()
    return total / max(1, count)


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


def train(
    config: TrainConfig,
    home: DataHome,
    job_dir: Path,
    *,
    stop: threading.Event | None = None,
    resume: bool = False,
    on_event: OnEvent | None = None,
) -> RunResult:
    """Run (or resume) one training job; write events to `job_dir` and the model to the home."""
    import torch

    config.validate()
    stop = stop or threading.Event()
    events = job_dir / EVENTS_FILE
    started = time.time()

    def event(kind: str, **data: Any) -> None:
        record = emit(events, kind, **data)
        if on_event is not None:
            on_event(record)

    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(job_dir / CHECKPOINT_DIR)
    device = pick_device(config.device)
    dtype = training_dtype(device, config.precision)
    amp_device = device.split(":")[0]
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    start = plan_start(config, home)
    tokenizer, model = load_model(config, start, home)
    data = load_training_data(
        home,
        tokenizer,
        dataset=config.dataset,
        label=config.emotion,
        block_size=config.block_size,
        max_words=config.max_words,
        seed=config.seed,
        eval_blocks=config.eval_blocks,
        tokens=start.tokens(tokenizer),
    )
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    model.to(device)
    model.train()
    batches = Batches(data.train, config.batch_size, config.seed, device)
    planned = math.ceil(config.epochs * batches.per_epoch / config.grad_accum)
    # --max-steps, when given, replaces the epoch budget.
    total_steps = config.max_steps or planned
    warmup_steps = max(1, int(config.warmup * total_steps)) if config.warmup else 0
    params = list(trainable_weights(model).values())
    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.startswith("cuda") or None,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup_steps, total_steps)
    )
    scaler = torch.amp.GradScaler(amp_device, enabled=dtype == torch.float16)

    step, smooth, best_loss, best_step, bad_evals = 0, None, math.inf, 0, 0
    prior_wall, tokens_seen = 0.0, 0
    if checkpoint is not None:
        weights, state = checkpoint
        current = trainable_weights(model)
        if set(weights) != set(current):
            raise PoetstudioError(
                f"checkpoint in {job_dir} does not match this model's trainable weights; "
                "its files were left as they are"
            )
        with torch.no_grad():
            for name, tensor in weights.items():
                current[name].copy_(tensor.to(current[name].device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        step, smooth = int(state["step"]), state["smooth_loss"]
        best_loss, best_step = float(state["best_val_loss"]), int(state["best_step"])
        bad_evals, prior_wall = int(state["bad_evals"]), float(state["wall_time_s"])
        tokens_seen = int(state["tokens_seen"])

    event(
        "start",
        emotion=config.emotion,
        method=config.method,
        device=device,
        dtype=str(dtype).replace("torch.", "") if dtype else "float32",
        base=start.base_spec,
        parent=(start.parent or {}).get("emotion"),
        total_steps=total_steps,
        epochs=config.epochs,
        step=step,
        train_poems=data.train.poems,
        train_tokens=data.train.content_tokens,
        trainable_params=sum(p.numel() for p in params),
        pid=os.getpid(),
        resumed=checkpoint is not None,
    )

    def snapshot() -> None:
        state = {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            "smooth_loss": smooth,
            "best_val_loss": best_loss,
            "best_step": best_step,
            "bad_evals": bad_evals,
            "wall_time_s": prior_wall + time.time() - started,
            "tokens_seen": tokens_seen,
            "micro_batch": step * config.grad_accum,
        }
        save_checkpoint(job_dir / CHECKPOINT_DIR, trainable_weights(model), state)
        event("checkpoint", step=step, path=str(job_dir / CHECKPOINT_DIR))

    def run_eval() -> bool:
        """Evaluate; keep the weights if best; return True when patience has run out."""
        nonlocal best_loss, best_step, bad_evals
        val_loss = evaluate(model, data.valid, config.batch_size, device, dtype)
        improved = val_loss < best_loss
        if improved:
            best_loss, best_step, bad_evals = val_loss, step, 0
            _save_weights(job_dir / BEST_FILE, trainable_weights(model))
        else:
            bad_evals += 1
        event(
            "eval",
            step=step,
            val_loss=val_loss,
            val_ppl=math.exp(min(val_loss, 50.0)),
            best=improved,
        )
        return config.patience > 0 and bad_evals >= config.patience

    reason = "finished the planned steps"
    last_log = time.perf_counter()
    while step < total_steps:
        if stop.is_set():
            if step:
                snapshot()
            event("stopped", step=step, reason="stop requested; resume with --resume")
            return RunResult("stopped", step)
        epoch_before = step * config.grad_accum // batches.per_epoch
        step_loss, step_tokens = 0.0, 0
        for micro in range(step * config.grad_accum, (step + 1) * config.grad_accum):
            ids, labels = batches.get(micro)
            # No attention mask is needed: only the last block has padding, at its end, and
            # causal attention never lets a real token see what comes after it.
            with torch.autocast(amp_device, dtype=dtype, enabled=dtype is not None):
                loss = model(input_ids=ids, labels=labels).loss / config.grad_accum
            scaler.scale(loss).backward()
            step_loss += float(loss.detach())
            step_tokens += int((labels != IGNORE).sum())
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1
        tokens_seen += step_tokens
        smooth = step_loss if smooth is None else SMOOTHING * smooth + (1 - SMOOTHING) * step_loss
        now = time.perf_counter()
        event(
            "step",
            step=step,
            epoch=step * config.grad_accum / batches.per_epoch,
            loss=step_loss,
            smooth_loss=smooth,
            lr=lr,
            tokens=step_tokens,
            tokens_per_s=step_tokens / max(now - last_log, 1e-9),
        )
        last_log = now
        epoch_end = step * config.grad_accum // batches.per_epoch > epoch_before
        if (step % config.eval_every == 0 or epoch_end or step == total_steps) and run_eval():
            reason = f"validation loss did not improve in {config.patience} evaluations"
            break
        if step % config.checkpoint_every == 0 and step < total_steps:
            snapshot()
        last_log = time.perf_counter()

    wall = prior_wall + time.time() - started
    model_dir = finish(
        config,
        home,
        job_dir,
        model,
        tokenizer,
        start,
        data.dataset,
        steps=step,
        best_loss=best_loss,
        best_step=best_step,
        reason=reason,
        wall=wall,
        device=device,
    )
    event(
        "done",
        step=step,
        model_dir=str(model_dir),
        best_val_loss=best_loss,
        best_val_ppl=math.exp(min(best_loss, 50.0)),
        wall_time_s=wall,
        reason=reason,
    )
    return RunResult("done", step, model_dir, best_loss)


def _save_weights(path: Path, weights: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp))


def finish(
    config: TrainConfig,
    home: DataHome,
    job_dir: Path,
    model: Any,
    tokenizer: Any,
    start: StartPoint,
    dataset: dict[str, Any],
    *,
    steps: int,
    best_loss: float,
    best_step: int,
    reason: str,
    wall: float,
    device: str,
) -> Path:
    """Load the best weights and save the finished model into `<home>/models/<emotion>/`.

    The model is written to a staging folder first and swapped in whole, so a failure (a full
    disk, a crash) leaves the previous model of this emotion untouched.
    """
    import torch
    from safetensors.torch import load_file

    final = home.models / config.emotion
    kept = "the previous model is intact" if final.exists() else "no model was replaced"
    if not math.isfinite(best_loss) or not (job_dir / BEST_FILE).is_file():
        # A model that never reached a finite validation loss learned nothing usable.
        raise PoetstudioError(
            f"validation loss never became finite, so the {config.emotion} model was not saved "
            f"and {kept}; try a lower --lr"
        )
    best = load_file(str(job_dir / BEST_FILE))
    current = trainable_weights(model)
    with torch.no_grad():
        for name, tensor in best.items():
            current[name].copy_(tensor.to(current[name].device))
    model.to("cpu")
    manifest = build_manifest(
        emotion=config.emotion,
        method=config.method,
        base=base_identity(start.base_spec, home),
        parent=start.parent,
        poem_tokens=start.tokens(tokenizer).as_dict(),
        dataset=dataset,
        hyperparameters=hyperparameters(config, model),
        best_val_loss=best_loss,
        best_val_ppl=math.exp(min(best_loss, 50.0)),
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
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def write_model(model: Any, tokenizer: Any, folder: Path, method: str, base_id: str) -> None:
    """Save the weights as safetensors: a LoRA adapter, or a whole model with its tokenizer."""
    # An adapter names its base by the base's id, not by a folder on this machine.
    for adapter in getattr(model, "peft_config", {}).values():
        adapter.base_model_name_or_path = base_id
    model.save_pretrained(folder, safe_serialization=True)
    # An adapter is always loaded on its base, with the base's tokenizer; only a full model
    # needs its own copy, and leaving it out keeps adapters small.
    if method == "full":
        tokenizer.save_pretrained(folder)


def hyperparameters(config: TrainConfig, model: Any) -> dict[str, Any]:
    """The settings that shaped the weights, for the manifest.

    LoRA's shape is read from the model itself: an adapter started from the neutral one keeps
    the neutral adapter's rank, whatever --lora-rank says.
    """
    keys = ("method", "batch_size", "block_size", "grad_accum", "epochs", "max_steps", "warmup")
    keys += ("weight_decay", "clip", "eval_every", "patience", "seed", "max_words")
    found: dict[str, Any] = {key: getattr(config, key) for key in keys}
    found["precision"] = config.precision
    found["lr"] = config.learning_rate
    found["optimizer"] = "AdamW"
    found["schedule"] = "linear warm-up, linear decay"
    if config.method == "lora":
        lora = model.peft_config["default"]
        found.update(
            lora_rank=lora.r,
            lora_alpha=lora.lora_alpha,
            lora_dropout=lora.lora_dropout,
            lora_targets=sorted(lora.target_modules),
        )
    return found
