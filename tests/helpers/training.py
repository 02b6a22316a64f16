"""Helpers for the training tests: tiny datasets in the dataset format, and small run configs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers.models import VERSES
from trainer.common.home import DataHome
from trainer.training.config import TrainConfig
from trainer.training.events import EVENTS_FILE

LINES = [line for line in VERSES.strip().splitlines() if line]


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
