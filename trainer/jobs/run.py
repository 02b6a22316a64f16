"""The training process of one job: `python -m trainer.jobs.run <job folder>`.

It holds the emotion's lock for its whole life, turns SIGINT and SIGTERM into a graceful stop
(checkpoint, `stopped` event, exit 0), and reports any failure as an `error` event.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from pathlib import Path

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import read_job
from trainer.jobs.events import EVENTS_FILE, emit
from trainer.jobs.locks import EmotionLock
from trainer.training.config import TrainConfig


def run(job_dir: Path) -> int:
    """Run the job in `job_dir`; return the process exit code."""
    job_dir = job_dir.resolve()
    home = DataHome(job_dir.parent.parent)
    events = job_dir / EVENTS_FILE
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        print(f"received {signal.Signals(signum).name}; checkpointing and stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    lock = None
    try:
        job = read_job(job_dir)
        if "config" not in job:
            raise PoetstudioError(
                f"job file {job_dir / 'job.json'} holds no training config; start a new job"
            )
        config = TrainConfig.from_dict(job["config"])
        if job.get("device"):
            config.device = job["device"]
        lock = EmotionLock(home, config.emotion)
        lock.acquire(job_dir.name)
        from trainer.training.loop import train

        train(config, home, job_dir, stop=stop, resume=bool(job.get("resume")))
        return 0
    except PoetstudioError as exc:
        emit(events, "error", message=str(exc))
        print(f"error: {exc}", flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - the job must always end with an event
        traceback.print_exc()
        emit(events, "error", message=f"{type(exc).__name__}: {exc}; see {job_dir / 'log.txt'}")
        return 1
    finally:
        if lock is not None:
            lock.release()


def main() -> None:
    """Process entry point."""
    if len(sys.argv) != 2:
        print("usage: python -m trainer.jobs.run <job folder>", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
