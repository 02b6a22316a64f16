"""The training process's events file: step events throttled, everything else written at once."""

from __future__ import annotations

import json
from pathlib import Path

from trainer.training.events import EventLog


def kinds_on_disk(path: Path) -> list[tuple[str, int | None]]:
    if not path.exists():
        return []
    records = map(json.loads, path.read_text().splitlines())
    return [(record["event"], record.get("step")) for record in records]


def test_step_events_wait_for_the_interval_and_a_final_event_writes_them_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, interval=3600.0)
    log.emit("start", step=0)
    for step in (1, 2, 3):
        log.emit("step", step=step, loss=1.0)
    assert kinds_on_disk(path) == [("start", 0)]
    log.emit("done", step=3)
    assert kinds_on_disk(path) == [("start", 0), ("step", 1), ("step", 2), ("step", 3), ("done", 3)]


def test_flush_writes_held_steps_so_none_is_lost_when_a_run_fails(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, interval=3600.0)
    record = log.emit("step", step=1, loss=2.5)
    assert record["event"] == "step" and record["loss"] == 2.5 and "time" in record
    assert kinds_on_disk(path) == []
    log.flush()
    assert kinds_on_disk(path) == [("step", 1)]
    log.flush()
    assert kinds_on_disk(path) == [("step", 1)]


def test_without_an_interval_every_step_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, interval=0.0)
    log.emit("step", step=1)
    assert kinds_on_disk(path) == [("step", 1)]
