"""Helpers for the training tests: tiny datasets in the dataset format, and small run configs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.helpers.models import VERSES
from trainer.common.home import DataHome
from trainer.training.config import TrainConfig
from trainer.training.events import EVENTS_FILE

LINES = [line for line in VERSES.strip().splitlines() if line]


def start_child(code: str, *args: str, setup: str = "") -> subprocess.Popen[bytes]:
    """Run `python -c setup; code *args` and return once `setup` has run: until the child has
    exec'd, its command line is still the test's, so a job watcher looking for `args` misses it."""
    source = f"{setup}\nprint('up', flush=True)\n{code}"
    process = subprocess.Popen([sys.executable, "-c", source, *args], stdout=subprocess.PIPE)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"
    return process


def poem_text(index: int) -> str:
    """A small two-line poem drawn from the fixture verses; five distinct poems in turn."""
    start = (index % 5) * 2
    return "\n".join(LINES[start : start + 2])


def write_dataset(
    home: DataHome, name: str = "clean", counts: dict[str, int] | None = None, valid_every: int = 8
) -> Path:
    """Write a dataset in the shared format: `counts` poems per label, every Nth one in valid."""
    counts = counts or {"neutral": 80, "trust": 80}
    folder = home.datasets / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    index = 0
    for label, number in counts.items():
        for _ in range(number):
            text = poem_text(index)
            rows.append(
                {
                    "id": f"p{index}",
                    "label": label,
                    "split": "valid" if index % valid_every == 0 else "train",
                    "counts": {},
                    "lines": 2,
                    "words": len(text.split()),
                    "gid": None,
                    "text": text,
                }
            )
            index += 1
    (folder / "poems.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    manifest = {"format": 1, "name": name, "poems": len(rows), "counts": counts}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def tiny_config(base: Path, emotion: str = "trust", **overrides: object) -> TrainConfig:
    """A run small enough for a test: 32-token blocks, 4 per batch, a handful of steps."""
    values: dict[str, object] = {
        "emotion": emotion,
        "base": str(base),
        "max_steps": 6,
        "batch_size": 4,
        "block_size": 32,
        "eval_every": 3,
        "eval_blocks": 4,
        "checkpoint_every": 100,
        "lr": 1e-3,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def config_args(config: TrainConfig) -> list[str]:
    """The `train` arguments of a config, for start_job."""
    from trainer.training.config import config_to_args

    return config_to_args(config)


def events_of(job: Path, kind: str) -> list[dict]:
    """The events of one kind a job folder's events file holds, in order."""
    lines = (job / EVENTS_FILE).read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["event"] == kind]


def new_job(home: DataHome, name: str) -> Path:
    """An empty job folder in the data home, for runs started in-process."""
    job = home.jobs / name
    job.mkdir(parents=True)
    return job


def wait_for(check: Callable[[], bool], timeout_s: float = 90.0, poll_s: float = 0.1) -> None:
    """Poll `check` until it holds; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(poll_s)


def job_events(home: DataHome, job_id: str) -> list[dict[str, Any]]:
    """A job's events so far (none before its file exists)."""
    from trainer.jobs.control import job_dir

    path = job_dir(home, job_id) / EVENTS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def kinds(home: DataHome, job_id: str) -> list[str]:
    """The kinds of a job's events so far, in order."""
    return [record["event"] for record in job_events(home, job_id)]


def ranks_of(pid: int) -> dict[int, psutil.Process]:
    """The rank processes under a launched job's process, by rank."""
    found = {}
    for child in psutil.Process(pid).children(recursive=True):
        rank = child.environ().get("RANK")
        if rank is not None and "trainer.jobs.run" in child.cmdline():
            found[int(rank)] = child
    return found


def two_rank_job_at_checkpoint(home: DataHome, base: Path) -> tuple[str, int, dict[int, Any]]:
    """Start a long two-rank job and wait until it has written a checkpoint: its id, its
    launcher's pid and its ranks' processes."""
    from trainer.jobs.control import job_dir, read_job, start_job

    config = tiny_config(base, nproc=2, max_steps=5000, eval_every=5000, checkpoint_every=2)
    job_id = start_job(home, config_args(config))
    wait_for(lambda: "checkpoint" in kinds(home, job_id), timeout_s=120.0)
    pid = int(read_job(job_dir(home, job_id))["pid"])
    return job_id, pid, ranks_of(pid)
