"""The training loop: one readable function from a base model to a finished emotion model.

LoRA (default) and full fine-tuning share it: AdamW, linear warm-up then linear decay, gradient
clipping and accumulation, a seed, and 16-bit autocast where the hardware has it (bf16 on CUDA, or
fp16 with a GradScaler; bf16 on CPUs with native support; see trainer/common/precision.py). It
evaluates every `eval_every` steps and at each epoch end, keeps the best weights, stops early
when validation stops improving, and checkpoints periodically and on a stop request.

The data position is a pure function of the step: optimizer step `s` uses micro-batches
`s * grad_accum ...`, and micro-batch `m` takes blocks from epoch `m // batches_per_epoch`'s
permutation (seeded by seed and epoch), and the step's random draws (dropout) are seeded by seed,
rank and step. So a checkpoint needs only the step to resume exactly.

Step losses stay on the device and are read in one go every few steps (`StepLosses`), so an
accelerator is never stalled waiting for the host; the step events are the same either way.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.device import pick_device
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.perplexity import perplexity
from trainer.common.precision import training_dtype
from trainer.training import distributed
from trainer.training.batchsize import auto_batch_size
from trainer.training.checkpoint import (
    CHECKPOINT_DIR,
    copy_weights,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trainable_weights,
)
from trainer.training.config import TrainConfig
from trainer.training.distributed import SINGLE, Ranks
from trainer.training.events import EVENTS_FILE, EventLog
from trainer.training.flops import device_name, flops_per_token, mfu, model_shape, peak_flops
from trainer.training.packing import IGNORE, DataSpec, Packed, load_training_data
from trainer.training.publish import BEST_FILE, finish, save_weights
from trainer.training.start import attention_of, load_model, plan_start
from trainer.training.valloss import validation_loss

if TYPE_CHECKING:
    import torch

SMOOTHING = 0.9  # weight of the past in the smoothed loss
# Steps between reads of the losses on an accelerator; on the CPU a read costs nothing.
READ_EVERY = 16

OnEvent = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """How a run ended."""

    status: str  # "done" or "stopped"
    step: int
    model_dir: Path | None = None
    best_val_loss: float | None = None


@dataclass
class LoopState:
    """What the loop carries from step to step; a checkpoint records all of it."""

    step: int = 0
    smooth_loss: float | None = None
    best_val_loss: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    tokens_seen: int = 0
    prior_wall_s: float = 0.0  # wall time of the earlier runs of a resumed job

    def checkpoint_fields(self, wall_s: float) -> dict[str, Any]:
        """The loop's part of a checkpoint's state, under the checkpoint format's keys."""
        return {
            "step": self.step,
            "smooth_loss": self.smooth_loss,
            "best_val_loss": self.best_val_loss,
            "best_step": self.best_step,
            "bad_evals": self.bad_evals,
            "wall_time_s": wall_s,
            "tokens_seen": self.tokens_seen,
        }

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> LoopState:
        """The loop state a checkpoint's state recorded."""
        return cls(
            step=int(state["step"]),
            smooth_loss=state["smooth_loss"],
            best_val_loss=float(state["best_val_loss"]),
            best_step=int(state["best_step"]),
            bad_evals=int(state["bad_evals"]),
            tokens_seen=int(state["tokens_seen"]),
            prior_wall_s=float(state["wall_time_s"]),
        )


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@dataclass
class MicroBatch:
    """One micro-batch on the device, and how many of its labels count in the loss."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    tokens: int  # counted on the host, so reading it never waits for the device
    # Tokens the loss predicts in the whole global micro-batch (all ranks), counted on the host.
    targets: int


class Batches:
    """Micro-batches by index: micro-batch `m` of a seeded, per-epoch permutation of the blocks."""

    def __init__(
        self, data: Packed, batch_size: int, seed: int, device: str, ranks: Ranks = SINGLE
    ) -> None:
        self.data = data
        self.ranks = ranks  # each rank takes its share of every micro-batch
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.per_epoch = math.ceil(data.blocks / batch_size)
        self._epoch = -1
        self._order: torch.Tensor | None = None
        self._real = (data.labels != IGNORE).sum(dim=1)
        self._targets = (data.labels[:, 1:] != IGNORE).sum(dim=1)
        if device.startswith("cuda"):
            # Pinned host memory lets copies to the GPU overlap with compute.
            pinned = (data.input_ids.pin_memory(), data.labels.pin_memory())
            self.data = Packed(*pinned, data.content_tokens, data.poems)

    def get(self, micro: int) -> MicroBatch:
        """Micro-batch `micro`, on the device."""
        import torch

        epoch, position = divmod(micro, self.per_epoch)
        if self._order is None or epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            self._order = torch.randperm(self.data.blocks, generator=generator)
            self._epoch = epoch
        rows = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        ids = self.data.input_ids.index_select(0, rows)
        labels = self.data.labels.index_select(0, rows)
        ids, labels = distributed.local_batch(ids, labels, self.ranks)
        if self.device.startswith("cuda"):
            ids, labels = ids.pin_memory(), labels.pin_memory()
        return MicroBatch(
            ids.to(self.device, non_blocking=True),
            labels.to(self.device, non_blocking=True),
            int(self._real.index_select(0, rows).sum()),
            int(self._targets.index_select(0, rows).sum()),
        )


@dataclass
class StepLosses:
    """Losses of finished steps, still on the device, read all at once when `due`."""

    every: int
    ranks: Ranks = SINGLE  # whose losses are added up, so every rank reads the global loss
    steps: list[tuple[int, float, int]] = field(default_factory=list)  # step, lr, tokens
    losses: list[torch.Tensor] = field(default_factory=list)

    def add(self, step: int, lr: float, tokens: int, loss: torch.Tensor) -> None:
        """Keep one step's loss (a 0-dim tensor) until the next read."""
        self.steps.append((step, lr, tokens))
        self.losses.append(loss)

    def due(self) -> bool:
        """Whether enough steps wait that reading them is worth a sync."""
        return len(self.steps) >= self.every

    def read(self) -> list[tuple[int, float, int, float]]:
        """(step, lr, tokens, loss) of each waiting step, with one host sync; then forget them."""
        import torch

        if not self.steps:
            return []
        values = distributed.all_sum(torch.stack(self.losses), self.ranks).tolist()
        read = [(*meta, value) for meta, value in zip(self.steps, values, strict=True)]
        self.steps, self.losses = [], []
        return read


def read_every(device: str) -> int:
    """Steps between reads of the step losses: on the CPU a read costs nothing, so every step."""
    return 1 if device == "cpu" else READ_EVERY


def use_compile(setting: str, device: str) -> bool:
    """Whether `--compile` (auto, on, off) compiles the model on `device`.

    auto means CUDA only: there fusing kernels pays; on the CPU compiling takes longer than a
    short run saves and needs a C++ compiler (benchmarks/bench_train.py measures it).
    """
    return setting == "on" or (setting == "auto" and device.startswith("cuda"))


def train(
    config: TrainConfig,
    home: DataHome,
    job_dir: Path,
    *,
    stop: threading.Event | None = None,
    resume: bool = False,
    on_event: OnEvent | None = None,
    ranks: Ranks = SINGLE,
) -> RunResult:
    """Run (or resume) one training job; write events to `job_dir` and the model to the home.

    Under torchrun, `ranks` says which rank this is (its process group already started): each
    rank trains on its share of every micro-batch, and only rank 0 writes events, checkpoints,
    best weights and the model.
    """
    log = EventLog(job_dir / EVENTS_FILE)
    try:
        return _train(config, home, job_dir, log, stop, resume, on_event, ranks)
    finally:
        log.flush()  # however the run ended, every step it made is on disk


def _train(
    config: TrainConfig,
    home: DataHome,
    job_dir: Path,
    log: EventLog,
    stop: threading.Event | None,
    resume: bool,
    on_event: OnEvent | None,
    ranks: Ranks,
) -> RunResult:
    import torch

    config.validate()
    stop = stop or threading.Event()
    started = time.time()

    def event(kind: str, **data: Any) -> None:
        if not ranks.is_main:
            return
        record = log.emit(kind, **data)
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
    spec = DataSpec(
        dataset=config.dataset,
        label=config.emotion,
        block_size=config.block_size,
        max_words=config.max_words,
        seed=config.seed,
        eval_blocks=config.eval_blocks,
    )
    data = load_training_data(home, tokenizer, spec, start.tokens(tokenizer))
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    model.to(device)
    model.train()
    # A resumed run keeps the batch it started with, whatever memory this device has free.
    batch_size = config.batch_size or (checkpoint[1].get("batch_size") if checkpoint else None)
    if batch_size is None:
        value_bytes = 4 if dtype is None else 2
        # Every rank must take the same share: the smallest that fits on all of their devices.
        fits = auto_batch_size(model, device, config.block_size, value_bytes)
        batch_size = distributed.all_min(fits, ranks, device) * ranks.world
    compiled = use_compile(config.compile, device)
    # From here on the config says what this run does: its batch, and whether it compiled.
    config = replace(config, batch_size=batch_size, compile="on" if compiled else "off")
    per_token = flops_per_token(model_shape(model), config.block_size)
    peak = peak_flops(device_name(device))
    if peak is not None:
        peak *= ranks.world  # tokens/s counts every rank's tokens
    if compiled:
        # In place, so parameter names (and so checkpoints) stay those of the plain model.
        model.compile()
    # The forward pass goes through DDP's wrapper; weights are saved from `model`, unwrapped, so
    # checkpoints load on any number of ranks.
    trained = distributed.wrap(model, ranks, device)
    batches = Batches(data.train, batch_size, config.seed, device, ranks)
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

    state = LoopState()
    if checkpoint is not None:
        weights, saved = checkpoint
        if set(weights) != set(trainable_weights(model)):
            raise PoetstudioError(
                f"checkpoint in {job_dir} does not match this model's trainable weights; "
                "its files were left as they are"
            )
        copy_weights(model, weights)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        state = LoopState.from_checkpoint(saved)

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
        step=state.step,
        train_poems=data.train.poems,
        train_tokens=data.train.content_tokens,
        trainable_params=sum(p.numel() for p in params),
        world_size=ranks.world,
        global_batch=batch_size * config.grad_accum,
        batch_size=batch_size,
        compile=config.compile,
        attention=attention_of(model),
        flops_per_token=per_token,
        peak_flops=peak,
        pid=os.getpid(),
        resumed=checkpoint is not None,
    )

    def snapshot() -> None:
        if not ranks.is_main:
            return
        distributed.die_if_orphaned()
        saved = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            "batch_size": batch_size,
            **state.checkpoint_fields(state.prior_wall_s + time.time() - started),
        }
        save_checkpoint(job_dir / CHECKPOINT_DIR, trainable_weights(model), saved)
        event("checkpoint", step=state.step, path=str(job_dir / CHECKPOINT_DIR))

    def run_eval() -> bool:
        """Evaluate; keep the weights if best; return True when patience has run out."""
        val_loss = validation_loss(model, data.valid, batch_size, device, dtype, ranks)
        improved = val_loss < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_step, state.bad_evals = val_loss, state.step, 0
            if ranks.is_main:
                save_weights(job_dir / BEST_FILE, trainable_weights(model))
        else:
            state.bad_evals += 1
        event(
            "eval",
            step=state.step,
            val_loss=val_loss,
            val_ppl=perplexity(val_loss),
            best=improved,
        )
        return config.patience > 0 and state.bad_evals >= config.patience

    pending = StepLosses(read_every(device), ranks)
    # Step losses add up in float64, as the Python floats they replace did; MPS has no float64.
    wide = torch.float32 if device.startswith("mps") else torch.float64
    window_start = time.perf_counter()

    def report_steps() -> None:
        """Read the waiting step losses and emit their step events, in order."""
        read = pending.read()
        if not read:
            return
        tokens = sum(step_tokens for _, _, step_tokens, _ in read)
        rate = tokens / max(time.perf_counter() - window_start, 1e-9)
        for step, lr, step_tokens, loss in read:
            smooth = state.smooth_loss
            state.smooth_loss = (
                loss if smooth is None else SMOOTHING * smooth + (1 - SMOOTHING) * loss
            )
            event(
                "step",
                step=step,
                epoch=step * config.grad_accum / batches.per_epoch,
                loss=loss,
                smooth_loss=state.smooth_loss,
                lr=lr,
                tokens=step_tokens,
                tokens_per_s=rate,
                mfu=mfu(rate, per_token, peak),
            )

    reason = "finished the planned steps"
    while state.step < total_steps:
        # Ranks stop together: a stop request on any of them stops all at this step.
        if distributed.any_rank(stop.is_set(), ranks, device):
            report_steps()
            if state.step:
                snapshot()
            event("stopped", step=state.step, reason="stop requested; resume with --resume")
            return RunResult("stopped", state.step)
        epoch_before = state.step * config.grad_accum // batches.per_epoch
        torch.manual_seed(distributed.step_seed(config.seed, ranks.rank, state.step))
        step_loss = torch.zeros((), dtype=wide, device=device)
        step_tokens = 0
        for micro in range(state.step * config.grad_accum, (state.step + 1) * config.grad_accum):
            batch = batches.get(micro)
            # No attention mask is needed: only the last block has padding, at its end, and
            # causal attention never lets a real token see what comes after it.
            last = micro == (state.step + 1) * config.grad_accum - 1
            # On several ranks each loss is its rank's token sum over the global micro-batch's
            # token count; DDP averages gradients over ranks, so scaling by the world size makes
            # the step one process's step on the whole batch.
            shared = {"num_items_in_batch": batch.targets} if ranks.distributed else {}
            with distributed.micro_batch(trained, ranks, last):
                with torch.autocast(amp_device, dtype=dtype, enabled=dtype is not None):
                    loss = trained(input_ids=batch.input_ids, labels=batch.labels, **shared).loss
                    loss = loss / config.grad_accum
                scaler.scale(loss * ranks.world if ranks.distributed else loss).backward()
            step_loss += loss.detach()
            step_tokens += batch.tokens
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        lr = float(scheduler.get_last_lr()[0])
        scheduler.step()
        state.step += 1
        state.tokens_seen += step_tokens
        pending.add(state.step, lr, step_tokens, step_loss)
        epoch_end = state.step * config.grad_accum // batches.per_epoch > epoch_before
        evaluate_now = state.step % config.eval_every == 0 or epoch_end or state.step == total_steps
        checkpoint_now = state.step % config.checkpoint_every == 0 and state.step < total_steps
        if pending.due() or evaluate_now or checkpoint_now:
            report_steps()
            if evaluate_now and run_eval():
                reason = f"validation loss did not improve in {config.patience} evaluations"
                break
            if checkpoint_now:
                snapshot()
            window_start = time.perf_counter()
    report_steps()
    if not ranks.is_main:
        return RunResult("done", state.step, None, state.best_val_loss)

    distributed.die_if_orphaned()
    wall = state.prior_wall_s + time.time() - started
    model_dir = finish(
        config,
        home,
        job_dir,
        model,
        tokenizer,
        start,
        data.dataset,
        steps=state.step,
        best_loss=state.best_val_loss,
        best_step=state.best_step,
        reason=reason,
        wall=wall,
        device=device,
        world_size=ranks.world,
    )
    event(
        "done",
        step=state.step,
        model_dir=str(model_dir),
        best_val_loss=state.best_val_loss,
        best_val_ppl=perplexity(state.best_val_loss),
        wall_time_s=wall,
        reason=reason,
    )
    return RunResult("done", state.step, model_dir, state.best_val_loss)
