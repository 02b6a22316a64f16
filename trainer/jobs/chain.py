"""`poetstudio train --all`: train neutral, then the 8 emotions, N of them at once.

Each emotion is an ordinary job (its own folder, process and lock). Neutral runs alone, since
every emotion starts from it; then the emotions, which are independent, run `parallel` at a
time as separate processes: all on one GPU, or spread over the GPUs with CUDA_VISIBLE_DEVICES
when there are several. The same loop serves the foreground command, which draws it through a
`ChainView`, and the detached chain process (`python -m trainer.jobs.chain`), which logs plain
lines. Ctrl-C or SIGTERM stops the running jobs gracefully and ends the chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import (
    JobInfo,
    chain_args,
    job_info,
    preflight,
    prepare_job,
    resume_target,
    spawn,
    stop_job,
)
from trainer.jobs.locks import busy_message, is_locked
from trainer.training.config import parse_train_args

# Memory one job takes at the default settings, for the default --parallel: on one H200 (about
# 139 GiB) 12 jobs ran, at about 12,000 tokens/s each, and 16 ran out of memory.
JOB_MEMORY_GIB = 11.5
# The emotions after neutral: more slots than this have nothing to run.
MAX_PARALLEL = len(MODEL_EMOTIONS) - 1
POLL_S = 0.5


@dataclass
class ChainJob:
    """A job the chain started and has not seen end yet."""

    emotion: str
    path: Path
    process: subprocess.Popen[bytes]
    gpu: str | None  # its CUDA_VISIBLE_DEVICES, when the chain spreads jobs over GPUs

    @property
    def id(self) -> str:
        """The job id."""
        return self.path.name


class ChainView:
    """How a chain shows itself. This one prints plain lines, the detached chain's log."""

    def plan(self, parallel: int, reason: str) -> None:
        """Called once, before the first job, with the number of emotions run at once."""
        print(f"training up to {parallel} emotion(s) at once after neutral ({reason})", flush=True)

    def started(self, job: ChainJob) -> None:
        """A job's process was started."""
        where = f" on GPU {job.gpu}" if job.gpu is not None else ""
        print(f"{job.emotion}: job {job.id}{where}", flush=True)

    def wait(self, running: Sequence[ChainJob]) -> None:
        """Return when a running job may have ended (soon, at the latest)."""
        time.sleep(POLL_S)

    def stopping(self, running: Sequence[ChainJob]) -> None:
        """Ctrl-C or SIGTERM: the running jobs are asked to checkpoint and stop."""
        print("stopping: the running jobs save a checkpoint", flush=True)

    def ended(self, job: ChainJob, info: JobInfo) -> None:
        """A job's process ended; `info` says how."""
        print(f"{job.emotion}: {info.state}", flush=True)

    def refused(self, emotion: str, message: str) -> None:
        """An emotion's job could not start (bad options, already training, ...)."""
        print(f"error: {emotion}: {message}", flush=True)


def preflight_chain(home: DataHome, args: list[str]) -> None:
    """Check everything that would stop a chain before it starts, so a detached chain does not
    fail where only `jobs/chain-log.txt` sees it: every emotion's options, no emotion already
    training, `--resume` options that match the jobs they continue, and the dataset, the base
    and the block size (neutral's, which the rest share)."""
    requests = [parse_train_args(chain_args(home, emotion, args)) for emotion in MODEL_EMOTIONS]
    for request in requests:
        running = is_locked(home, request.config.emotion)
        if running:
            raise PoetstudioError(busy_message(request.config.emotion, running))
        if request.resume:
            resume_target(home, request)
    preflight(home, requests[0].config)


@dataclass(frozen=True)
class Gpu:
    """A CUDA device a job can be given: its CUDA_VISIBLE_DEVICES name and its memory."""

    name: str
    memory_gib: float


def visible_gpus() -> list[Gpu]:
    """The CUDA devices this process may use ([] if none), asked of a short-lived process.

    A child process asks so that the chain itself never holds a CUDA context on a GPU its jobs
    need; a machine without CUDA (or without torch's CUDA build) gives [].
    """
    probe = (
        "import json, torch\n"
        "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
        "print(json.dumps([torch.cuda.get_device_properties(i).total_memory for i in range(n)]))"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
        )
        sizes = [int(size) for size in json.loads(done.stdout.strip().splitlines()[-1])]
    except (OSError, ValueError, IndexError, TypeError, subprocess.SubprocessError):
        return []
    # Device i of the probe is the i-th entry of our CUDA_VISIBLE_DEVICES, when that is set.
    named = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    return [
        Gpu(named[i] if i < len(named) and named[i] else str(i), size / 2**30)
        for i, size in enumerate(sizes)
    ]


def default_parallel(gpus: Sequence[Gpu]) -> tuple[int, str]:
    """How many emotions to train at once by default, and why.

    Each GPU takes one job per JOB_MEMORY_GIB of its memory (at least one), up to MAX_PARALLEL
    in all; without CUDA, one (jobs on the CPU would share the same cores).
    """
    if not gpus:
        return 1, "no CUDA device; --parallel N overrides"
    slots = sum(max(1, int(gpu.memory_gib // JOB_MEMORY_GIB)) for gpu in gpus)
    total = sum(gpu.memory_gib for gpu in gpus)
    return min(MAX_PARALLEL, slots), (
        f"{len(gpus)} GPU(s), {total:.0f} GiB at {JOB_MEMORY_GIB:g} GiB a job; "
        "--parallel N overrides"
    )


def _pick_gpu(gpus: Sequence[Gpu], running: Sequence[ChainJob]) -> str | None:
    """The least busy GPU for the next job; None when there are not several to spread over."""
    if len(gpus) < 2:
        return None
    names = [gpu.name for gpu in gpus]
    return min(names, key=lambda name: sum(job.gpu == name for job in running))


def _room(pending: Sequence[str], running: Sequence[ChainJob], parallel: int) -> int:
    """How many jobs may run now: one while neutral is still to run or running."""
    if NEUTRAL in pending or any(job.emotion == NEUTRAL for job in running):
        return 1
    return parallel


def _reap(running: list[ChainJob], view: ChainView) -> bool:
    """Drop the jobs whose processes ended, telling the view; False if one did not finish."""
    finished = True
    for job in [job for job in running if job.process.poll() is not None]:
        running.remove(job)
        info = job_info(job.path)
        view.ended(job, info)
        finished = finished and info.state == "done"
    return finished


def run(
    home: DataHome,
    args: list[str],
    parallel: int | None = None,
    view: ChainView | None = None,
    emotions: Sequence[str] | None = None,
) -> int:
    """Train `emotions` (default: all; neutral first, alone), `parallel` at a time; 0 when all
    finished.

    `parallel` None chooses from the GPUs' memory (`default_parallel`). After a job that does not
    finish, no new job starts; the running ones go on to their end. KeyboardInterrupt (Ctrl-C, or
    SIGTERM in the detached chain) stops every running job with a checkpoint.
    """
    view = view or ChainView()
    device = parse_train_args(["--emotion", NEUTRAL, *args]).config.device
    # Only a CUDA run (asked for, or the default device) has GPUs to size and spread over.
    gpus = visible_gpus() if (device or "cuda").split(":")[0] == "cuda" else []
    if parallel is None:
        parallel, reason = default_parallel(gpus)
    else:
        reason = "--parallel"
    view.plan(parallel, reason)
    pending = list(emotions if emotions is not None else MODEL_EMOTIONS)
    running: list[ChainJob] = []
    finished = True
    try:
        while running or (pending and finished):
            while finished and pending and len(running) < _room(pending, running, parallel):
                emotion = pending.pop(0)
                gpu = _pick_gpu(gpus, running)
                try:
                    path = prepare_job(home, chain_args(home, emotion, args))
                except PoetstudioError as exc:
                    view.refused(emotion, str(exc))
                    finished = False
                    break
                job = ChainJob(emotion, path, spawn(path, gpu=gpu), gpu)
                running.append(job)
                view.started(job)
            if running:
                view.wait(running)
                finished = _reap(running, view) and finished
    except KeyboardInterrupt:
        view.stopping(running)
        for job in running:
            # A job whose file was damaged meanwhile cannot be signalled; the chain still ends.
            with contextlib.suppress(PoetstudioError):
                stop_job(home, job.id)
        while running:
            view.wait(running)
            _reap(running, view)
        return 1
    return 0 if finished and not pending else 1


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Process entry point: `python -m trainer.jobs.chain <home> [--parallel N] [train args...]`."""
    argv = sys.argv[1:]
    if not argv:
        print(
            "usage: python -m trainer.jobs.chain <home> [--parallel N] [train args...]",
            file=sys.stderr,
        )
        sys.exit(2)
    parallel = None
    if argv[1:2] == ["--parallel"]:
        parallel = int(argv[2])
        del argv[1:3]
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the chain the way Ctrl-C does
    sys.exit(run(DataHome(Path(argv[0])), argv[1:], parallel))


if __name__ == "__main__":
    main()
