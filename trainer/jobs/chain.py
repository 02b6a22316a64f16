"""`poetstudio train --all --detach`: one process that trains neutral, then the 8 emotions.

Each emotion is an ordinary job (its own folder, process and lock), started when the one before it
has finished. SIGTERM or SIGINT stops the running job gracefully and ends the chain.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

from trainer.common.emotions import MODEL_EMOTIONS
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import chain_args, job_info, preflight, prepare_job, spawn, stop_job
from trainer.jobs.locks import busy_message, is_locked
from trainer.training.config import parse_train_args


def preflight_chain(home: DataHome, args: list[str]) -> None:
    """Check everything that would stop a chain before it starts, so a detached chain does not
    fail where only `jobs/chain-log.txt` sees it: every emotion's options, no emotion already
    training, and the dataset, the base and the block size (neutral's, which the rest share)."""
    configs = [
        parse_train_args(chain_args(home, emotion, args)).config for emotion in MODEL_EMOTIONS
    ]
    for config in configs:
        running = is_locked(home, config.emotion)
        if running:
            raise PoetstudioError(busy_message(config.emotion, running))
    preflight(home, configs[0])


def run(home: DataHome, args: list[str]) -> int:
    """Train every model emotion in turn; stop at the first job that does not finish."""
    state: dict[str, str | bool | None] = {"job": None, "stopping": False}

    def request_stop(_signum: int, _frame: object) -> None:
        state["stopping"] = True
        if state["job"]:
            # A job whose file was damaged meanwhile cannot be signalled; the chain still ends.
            with contextlib.suppress(PoetstudioError):
                stop_job(home, str(state["job"]))

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    for emotion in MODEL_EMOTIONS:
        if state["stopping"]:
            return 1
        try:
            path = prepare_job(home, chain_args(home, emotion, args))
        except PoetstudioError as exc:
            print(f"error: {emotion}: {exc}", flush=True)
            return 1
        state["job"] = path.name
        print(f"{emotion}: job {path.name}", flush=True)
        spawn(path).wait()
        final = job_info(path).state
        print(f"{emotion}: {final}", flush=True)
        if final != "done":
            return 1
    return 0


def main() -> None:
    """Process entry point: `python -m trainer.jobs.chain <home> [train args...]`."""
    if len(sys.argv) < 2:
        print("usage: python -m trainer.jobs.chain <home> [train args...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(run(DataHome(Path(sys.argv[1])), sys.argv[2:]))


if __name__ == "__main__":
    main()
