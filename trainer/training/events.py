"""The job-event format: JSON lines written by a training process, read by the CLI and the studio.

Each line is one object with at least `event` (a kind below) and `time` (Unix seconds).
- start: emotion, method, device, base, total_steps, epochs, pid
- step: step, epoch, loss, smooth_loss, lr, tokens_per_s, mfu (a share of the device's peak, or
  null where the peak is unknown)
- eval: step, val_loss, val_ppl, best (bool)
- checkpoint: step, path
- done: step, model_dir, best_val_loss, best_val_ppl, wall_time_s
- stopped: step, reason (a graceful stop: Ctrl-C, SIGTERM or `jobs stop`)
- error: message

Readers check every line against these kinds' schemas (trainer/common/records.py): a line that is
not JSON or has a wrongly typed field is skipped with a note, so one bad line never breaks a
listing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.common.atomic import append_durably
from trainer.common.records import (
    BOOLEAN,
    COUNT,
    NUMBER,
    STRING,
    RecordError,
    Schema,
    one_of,
    optional,
    parse_object,
    required,
)

EVENTS_FILE = "events.jsonl"
KINDS = ("start", "step", "eval", "checkpoint", "done", "stopped", "error")
# The kinds that end a job: a job's last event is one of these.
FINAL_KINDS = ("done", "stopped", "error")
# The fields JobProgress reads, by kind; every event has its kind and time.
_COMMON: Schema = {"event": required(one_of(*KINDS)), "time": required(NUMBER)}
_MEASURE = optional(NUMBER, nullable=True)
EVENT_SCHEMAS: dict[str, Schema] = {
    "start": {
        **_COMMON,
        **{key: optional(STRING, nullable=True) for key in ("emotion", "method", "device", "base")},
        "total_steps": optional(COUNT),
        "step": optional(COUNT),
    },
    "step": {
        **_COMMON,
        "step": optional(COUNT),
        "epoch": optional(NUMBER),
        **{key: _MEASURE for key in ("loss", "smooth_loss", "lr", "tokens_per_s", "mfu")},
    },
    "eval": {
        **_COMMON,
        "step": optional(COUNT),
        "val_loss": _MEASURE,
        "val_ppl": _MEASURE,
        "best": optional(BOOLEAN),
    },
    "checkpoint": _COMMON,
    "done": {**_COMMON, "step": optional(COUNT), "model_dir": optional(STRING)},
    "stopped": {**_COMMON, "reason": optional(STRING)},
    "error": {**_COMMON, "message": optional(STRING)},
}
# Notes kept per reader about skipped lines, so a damaged file cannot grow them without bound.
MAX_NOTES = 20


# Step events are written at most this often (seconds); the other kinds are written at once.
STEP_WRITE_INTERVAL = 0.25


def _record(event: str, data: dict[str, Any]) -> dict[str, Any]:
    if event not in KINDS:
        raise ValueError(f"unknown event kind {event!r}")
    return {"event": event, "time": time.time(), **data}


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def emit(path: Path, event: str, /, **data: Any) -> dict[str, Any]:
    """Append one event line to `path` and flush it to disk, so readers see it at once."""
    record = _record(event, data)
    append_durably(path, _lines([record]))
    return record


class EventLog:
    """A job's events file as its training process writes it, with step events throttled.

    A fast loop makes hundreds of steps a second, and a durable append per step would cost more
    than the step. Step events are held back and written together at most every `interval`
    seconds; any other kind is written at once, after the steps before it, so the file always
    holds the latest eval, checkpoint and final state, and no step is lost. Call `flush` when the
    run ends, however it ends.
    """

    def __init__(self, path: Path, interval: float = STEP_WRITE_INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._held: list[dict[str, Any]] = []
        self._written = time.monotonic()

    def emit(self, event: str, /, **data: Any) -> dict[str, Any]:
        """Record one event; return the record as it is (or will be) written."""
        record = _record(event, data)
        self._held.append(record)
        if event != "step" or time.monotonic() - self._written >= self.interval:
            self.flush()
        return record

    def flush(self) -> None:
        """Write every held event now."""
        if self._held:
            append_durably(self.path, _lines(self._held))
            self._held = []
        self._written = time.monotonic()


def parse_event(raw: bytes, path: Path, line: int) -> dict[str, Any]:
    """One checked event line; RecordError naming the file and line when it is not an event."""
    record = parse_object(raw, _COMMON, "event", path, line)
    return parse_object(raw, EVENT_SCHEMAS[record["event"]], "event", path, line)


class EventReader:
    """Reads new events from a job's events file incrementally, tolerating a half-written tail.

    A complete line that is not a valid event is skipped; `notes` says which and why. A file that
    was truncated or replaced is read again from its start, and `restarts` counts up, so that
    whoever folds the events starts over too.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._line = 0
        self._identity: tuple[int, int] | None = None
        self.skipped = 0
        self.notes: list[str] = []
        self.restarts = 0

    def read_new(self) -> list[dict[str, Any]]:
        """Return the complete events written since the last call."""
        try:
            with open(self.path, "rb") as handle:
                info = os.fstat(handle.fileno())
                identity = (info.st_dev, info.st_ino)
                if self._identity not in (None, identity) or info.st_size < self._offset:
                    self._start_over()
                self._identity = identity
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        events = []
        for raw in chunk[: end + 1].split(b"\n")[:-1]:
            self._line += 1
            if not raw.strip():
                continue
            try:
                events.append(parse_event(raw, self.path, self._line))
            except RecordError as exc:
                self.skipped += 1
                if len(self.notes) < MAX_NOTES:
                    self.notes.append(f"{exc}; line skipped")
        return events

    def _start_over(self) -> None:
        self._offset = 0
        self._line = 0
        self.skipped = 0
        self.notes = []
        self.restarts += 1


@dataclass
class JobProgress:
    """What a job's events say so far: the state every progress display renders."""

    status: str = "pending"  # pending, running, done, stopped, error
    emotion: str = ""
    method: str = ""
    device: str = ""
    base: str = ""
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    loss: float | None = None
    smooth_loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None  # model-FLOPs utilisation, a share of the device's peak
    val_loss: float | None = None
    val_ppl: float | None = None
    best_val_ppl: float | None = None
    started: float | None = None
    updated: float | None = None
    message: str = ""
    model_dir: str = ""
    # (step, smoothed loss) of every step, and (step, val ppl) of every evaluation: the curve.
    curve: list[tuple[int, float]] = field(default_factory=list)
    evals: list[tuple[int, float]] = field(default_factory=list)
    skipped: int = 0  # event lines that were not valid events
    note: str = ""  # why the first skipped line was skipped

    @property
    def fraction(self) -> float:
        """Share of steps done, 0..1."""
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the average pace so far, or None before there is a pace."""
        if self.status != "running" or not self.started or not self.updated or not self.step:
            return None
        elapsed = self.updated - self.started
        return elapsed / self.step * max(0, self.total_steps - self.step)

    def note_skipped(self, reader: EventReader) -> None:
        """Record how many lines `reader` has skipped, and why the first was."""
        self.skipped = reader.skipped
        self.note = reader.notes[0] if reader.notes else ""

    def apply(self, record: dict[str, Any]) -> None:
        """Fold one event into the progress."""
        kind = record.get("event")
        self.updated = record.get("time", self.updated)
        if kind == "start":
            self.status = "running"
            self.started = record.get("time")
            for key in ("emotion", "method", "device", "base"):
                setattr(self, key, str(record.get(key) or ""))
            self.total_steps = int(record.get("total_steps", 0))
            self.step = int(record.get("step", 0))
            # A resumed run starts again from its checkpoint: its steps replace the later ones.
            self.curve = [point for point in self.curve if point[0] <= self.step]
            self.evals = [point for point in self.evals if point[0] <= self.step]
        elif kind == "step":
            self.step = int(record.get("step", self.step))
            self.epoch = float(record.get("epoch", self.epoch))
            self.loss = record.get("loss")
            self.smooth_loss = record.get("smooth_loss")
            self.lr = record.get("lr")
            self.tokens_per_s = record.get("tokens_per_s")
            self.mfu = record.get("mfu")
            if self.smooth_loss is not None:
                self.curve.append((self.step, float(self.smooth_loss)))
        elif kind == "eval":
            self.val_loss = record.get("val_loss")
            self.val_ppl = record.get("val_ppl")
            if self.val_ppl is not None:
                self.evals.append((int(record.get("step", self.step)), float(self.val_ppl)))
            if self.val_ppl is not None and (
                self.best_val_ppl is None or self.val_ppl < self.best_val_ppl
            ):
                self.best_val_ppl = self.val_ppl
        elif kind == "done":
            self.status = "done"
            self.model_dir = str(record.get("model_dir", ""))
            self.step = int(record.get("step", self.step))
        elif kind == "stopped":
            self.status = "stopped"
            self.message = str(record.get("reason", ""))
        elif kind == "error":
            self.status = "error"
            self.message = str(record.get("message", ""))


def format_mfu(mfu: float | None) -> str:
    """Model-FLOPs utilisation as a percentage, '-' where the device's peak is unknown."""
    return "-" if mfu is None else f"{mfu:.0%}" if mfu >= 0.1 else f"{mfu:.1%}"


def format_duration(seconds: float | None) -> str:
    """A short h:mm:ss (or m:ss) duration, '-' when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def read_progress(path: Path) -> JobProgress:
    """Fold a whole events file into a JobProgress (bad lines skipped and noted)."""
    progress = JobProgress()
    reader = EventReader(path)
    for record in reader.read_new():
        progress.apply(record)
    progress.note_skipped(reader)
    return progress
