"""One run over many processes: torch DDP under torchrun, without any UI.

torchrun starts one process per rank and tells each where it stands through RANK, WORLD_SIZE and
LOCAL_RANK. Every rank builds the same model from the same seed, reads the same data and walks the
same deterministic order of global micro-batches; each takes only its slice of every micro-batch,
so the data position stays a pure function of the step whatever the number of ranks. Loss and
token sums are added across ranks, so what rank 0 logs is what one process would have logged.
Without torchrun (no WORLD_SIZE, or 1) nothing here starts a process group.

The ranks of a job that trainer/jobs/launch.py started die with it (`bind_to_launcher`), so no
rank outlives its job, trains on beside a resumed copy of it, or publishes a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.common.errors import PoetstudioError
from trainer.common.lifeline import die_with_parent

if TYPE_CHECKING:
    import torch

IGNORE = -100  # the label value the loss skips (trainer/training/packing.py uses the same)
# Set by trainer/jobs/launch.py for its ranks: the pid of the launching process they die with.
LAUNCHER_PID = "POETSTUDIO_LAUNCHER_PID"
# How long rank 0 waits for the other ranks to close their connections after a good run.
LEAVE_TIMEOUT_S = 60.0
LEFT_KEY = "poetstudio/ranks-left"


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the ranks of one run."""

    rank: int = 0
    world: int = 1
    local: int = 0  # the rank on this machine, which picks the GPU

    @property
    def is_main(self) -> bool:
        """Whether this rank writes the events, checkpoints and model (rank 0 does)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are other ranks to agree with."""
        return self.world > 1


SINGLE = Ranks()


def env_ranks(environ: Mapping[str, str] | None = None) -> Ranks:
    """The ranks torchrun describes in the environment; one rank when it describes none."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return SINGLE
    values = {}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        try:
            values[key] = int(environ.get(key, "0"))
        except ValueError:
            raise PoetstudioError(f"{key}={environ[key]!r} is not a whole number") from None
    ranks = Ranks(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if not (0 <= ranks.rank < ranks.world and ranks.local >= 0):
        raise PoetstudioError(f"rank {ranks.rank} does not fit a world of {ranks.world}")
    return ranks


def rank_device(device: str, ranks: Ranks) -> str:
    """The device of this rank: its own GPU on CUDA (by LOCAL_RANK), else `device` as it is."""
    if not ranks.distributed:
        return device
    kind = device.split(":")[0]
    if kind == "cuda":
        return f"cuda:{ranks.local}"
    if kind != "cpu":
        raise PoetstudioError(f"training on several ranks runs on CUDA GPUs or the CPU, not {kind}")
    return device


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the platform tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_ranks(device: str, nproc: int) -> None:
    """Refuse more ranks than this machine has devices: a GPU each on CUDA, a core each on the CPU.

    More ranks than cores only share the cores more thinly while each holds a copy of the model
    (the out-of-memory killer then picks ranks off). Runs over several machines are prepared with
    `python -m trainer.jobs.launch prepare` and started by torchrun, which this does not bound.
    """
    kind = device.split(":")[0]
    if nproc <= 1:
        return
    if kind not in ("cuda", "cpu"):
        raise PoetstudioError(f"--nproc above 1 runs on CUDA GPUs or the CPU, not {kind}")
    if kind == "cpu":
        cores = usable_cores()
        if nproc > cores:
            raise PoetstudioError(
                f"--nproc {nproc} is more ranks than the {cores} CPU cores this machine gives "
                f"poetstudio; use at most --nproc {cores}, one rank per core"
            )
        return
    import torch

    if nproc > torch.cuda.device_count():
        raise PoetstudioError(
            f"--nproc {nproc} needs {nproc} GPUs, one per rank, but this machine has "
            f"{torch.cuda.device_count()}"
        )


def _launcher() -> int | None:
    value = os.environ.get(LAUNCHER_PID, "")
    return int(value) if value.isdigit() else None


def launcher_gone() -> bool:
    """Whether this rank's launcher has died (a rank that no launcher started never is)."""
    launcher = _launcher()
    return launcher is not None and os.getppid() != launcher


def _die() -> None:
    """End this process at once: no stop request, no checkpoint, no event, no model."""
    os.kill(os.getpid(), signal.SIGKILL)


def die_if_orphaned() -> None:
    """Called before a rank writes what outlives it (a checkpoint, the model): a rank whose
    launcher is gone ends here, before a watch thread's next look."""
    if launcher_gone():
        _die()


def bind_to_launcher() -> None:
    """Make this rank die with the launcher that started it (LAUNCHER_PID names it), however the
    launcher ends (trainer/common/lifeline.py). torchrun starts ranks from its main thread, which
    the parent-death signal follows."""
    launcher = _launcher()
    if launcher is not None:
        die_with_parent(launcher)


def start(ranks: Ranks, device: str) -> None:
    """Join the run's process group: NCCL on CUDA, one GPU per rank; gloo on the CPU."""
    if not ranks.distributed:
        return
    import torch
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(ranks.local)
        dist.init_process_group("nccl", device_id=torch.device(device))
    else:
        dist.init_process_group("gloo")


def stop(*, together: bool = False) -> None:
    """Leave the process group, if this process joined one.

    `together` is for a run that ended well on every rank: the ranks meet, close their
    connections, and rank 0 (which hosts the rendezvous store) exits last. A rank that exits while
    a peer still holds an open gloo connection to it can abort that peer (SIGABRT, "terminate
    called") and turn a finished run into a failed one. After a failure the peers may be gone or
    stuck, so this process leaves at once.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if not together:
        dist.destroy_process_group()
        return
    dist.barrier()
    store = dist.distributed_c10d._get_default_store()
    world, rank = dist.get_world_size(), dist.get_rank()
    dist.destroy_process_group()
    left = store.add(LEFT_KEY, 1)
    deadline = time.monotonic() + LEAVE_TIMEOUT_S
    while rank == 0 and left < world and time.monotonic() < deadline:
        time.sleep(0.01)
        left = store.add(LEFT_KEY, 0)


def share(count: int, ranks: Ranks) -> slice:
    """This rank's contiguous slice of `count` rows; slices differ in length by at most one."""
    base, extra = divmod(count, ranks.world)
    begin = ranks.rank * base + min(ranks.rank, extra)
    return slice(begin, begin + base + (ranks.rank < extra))


def local_batch(
    ids: torch.Tensor, labels: torch.Tensor, ranks: Ranks
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's rows of a global micro-batch.

    A micro-batch with fewer rows than ranks (an epoch's short last one) leaves some rank without
    a row; it gets the first row with every label ignored, so it still runs the forward and
    backward pass that DDP's gradient exchange waits for, and adds nothing to the loss.
    """
    if not ranks.distributed:
        return ids, labels
    rows = share(int(ids.shape[0]), ranks)
    if rows.start == rows.stop:
        return ids[:1], labels[:1].clone().fill_(IGNORE)
    return ids[rows], labels[rows]


def target_count(labels: torch.Tensor) -> int:
    """How many tokens of a batch the loss predicts: labels after the first that are not ignored.

    Every rank holds the whole global micro-batch on the host, so each computes the global count
    itself, with no exchange and no device sync.
    """
    return int((labels[:, 1:] != IGNORE).sum())


def all_sum(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Add `tensor` across ranks in place (loss sums, token counts); returns it."""
    if ranks.distributed:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, ranks: Ranks, device: str) -> bool:
    """Whether `flag` is true on any rank: how all ranks agree to stop at the same step."""
    if not ranks.distributed:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def all_min(value: int, ranks: Ranks, device: str) -> int:
    """The smallest of `value` across ranks: a setting every rank must share, such as the
    automatic batch, which each rank measures on its own GPU."""
    if not ranks.distributed:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the random draws (dropout masks) of `rank` in optimizer step `step`.

    Each rank draws its own masks: with one shared stream every rank would drop the same units of
    its own rows. Derived afresh every step from the run's seed, it is a pure function of the
    step, like the data position: a resumed run draws exactly what the uninterrupted one did,
    on every rank, whatever was drawn before the checkpoint.
    """
    digest = hashlib.blake2b(f"{seed}:{rank}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # torch takes seeds below 2**63


def wrap(model: torch.nn.Module, ranks: Ranks, device: str) -> torch.nn.Module:
    """The model DDP trains on several ranks (or `model` itself on one).

    DDP averages gradients over ranks; callers scale each rank's loss by the world size and
    divide by the global token count, so the step equals one process's step on the whole batch.
    No parameter goes unused in a causal LM's forward pass, so none is searched for every step.
    """
    if not ranks.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[ranks.local] if device.startswith("cuda") else None,
        find_unused_parameters=False,
    )


def micro_batch(model: Any, ranks: Ranks, last: bool) -> contextlib.AbstractContextManager[None]:
    """The context of one micro-batch's forward and backward pass: DDP exchanges gradients only
    after the `last` micro-batch of a step; the others accumulate locally."""
    if ranks.distributed and not last:
        return model.no_sync()
    return contextlib.nullcontext()
