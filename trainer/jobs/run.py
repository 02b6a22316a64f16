"""The training process of one job, or of one rank of it: `python -m trainer.jobs.run <job folder>`.

It holds the emotion's lock for its whole life, turns SIGINT and SIGTERM into a graceful stop
(checkpoint, `stopped` event, exit 0), and reports any failure as an `error` event.

Started by torchrun (RANK, WORLD_SIZE and LOCAL_RANK set), it is one rank of a job: it joins the
process group, and only rank 0 writes events. Under trainer/jobs/launch.py the launching process
holds the lock and reports a dead rank, and each rank dies with that process and holds the
emotion's ranks lock while it lives; under a torchrun started by hand (several machines) rank 0
takes the lock and records its pid, so `poetstudio jobs` and `jobs stop` find it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from trainer.common.atomic import atomic_write_json
from trainer.common.device import pick_device
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import JOB_FILE, read_job
from trainer.jobs.launch import SUPERVISED
from trainer.jobs.locks import EmotionLock, hold_as_rank
from trainer.training import distributed
from trainer.training.config import TrainConfig
from trainer.training.events import EVENTS_FILE, emit


def run(job_dir: Path) -> int:
    """Run the job (or this rank of it) in `job_dir`; return the process exit code."""
    job_dir = job_dir.resolve()
    home = DataHome(job_dir.parent.parent)
    events = job_dir / EVENTS_FILE
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        print(f"received {signal.Signals(signum).name}; checkpointing and stopping", flush=True)
        stop.set()

    supervised = os.environ.get(SUPERVISED) == job_dir.name
    if supervised:
        distributed.bind_to_launcher()  # first: a rank never outlives its launcher
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    lock = None
    rank_lock = None
    ranks = distributed.SINGLE
    try:
        ranks = distributed.env_ranks()
        job = read_job(job_dir)
        if "config" not in job:
            raise PoetstudioError(
                f"job file {job_dir / 'job.json'} holds no training config; start a new job"
            )
        config = TrainConfig.from_dict(job["config"])
        if job.get("device"):
            config.device = job["device"]
        if supervised:
            rank_lock = hold_as_rank(home, config.emotion)
        elif ranks.is_main:
            lock = EmotionLock(home, config.emotion)
            lock.acquire(job_dir.name)
            if ranks.distributed:
                atomic_write_json(job_dir / JOB_FILE, {**job, "pid": os.getpid()})
        if ranks.distributed:
            config.device = distributed.rank_device(pick_device(config.device), ranks)
            distributed.start(ranks, config.device)
        from trainer.training.loop import train

        train(config, home, job_dir, stop=stop, resume=bool(job.get("resume")), ranks=ranks)
        distributed.stop(together=True)
        return 0
    except PoetstudioError as exc:
        report(ranks, exc, events, str(exc), to_events=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the job must always end with an event
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}; see {job_dir / 'log.txt'}"
        # Under a launcher, this is most often a collective that lost a killed peer: the
        # launcher knows which rank failed first and writes the one event that says so.
        report(ranks, exc, events, message, to_events=not supervised)
        return 1
    finally:
        distributed.stop()
        if lock is not None:
            lock.release()
        if rank_lock is not None:
            os.close(rank_lock)


def report(
    ranks: distributed.Ranks, exc: BaseException, events: Path, message: str, *, to_events: bool
) -> None:
    """Say why this process failed: rank 0 in the events (`to_events`), every rank in its log
    lines and, under torchrun, in the error file (TORCHELASTIC_ERROR_FILE) that the launcher
    reads back."""
    if ranks.is_main and to_events:
        emit(events, "error", message=message)
    prefix = f"rank {ranks.rank}: " if ranks.distributed else ""
    print(f"{prefix}error: {message}", flush=True)
    if ranks.distributed:
        from torch.distributed.elastic.multiprocessing.errors import get_error_handler

        get_error_handler().record_exception(exc)


def main() -> None:
    """Process entry point."""
    if len(sys.argv) != 2:
        print("usage: python -m trainer.jobs.run <job folder>", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
