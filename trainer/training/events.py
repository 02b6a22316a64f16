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
from collections.abc import Iterator
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
# Reading a long events file: how much is read at once, how much of its end is read whole, how
# far apart the step events before that are that are read to chart the loss, and the longest
# line kept waiting for its end.
CHUNK_BYTES = 256 << 10
TAIL_BYTES = 256 << 10
SAMPLE_BYTES = 64 << 10
MAX_LINE_BYTES = 1 << 20
# How every step event this module writes begins (json.dumps of a record whose first key is
# the kind); a step event written otherwise is simply always read.
STEP_PREFIX = b'{"event": "step"'
# The most points a loss curve or evaluation list keeps; beyond it they are thinned evenly.
MAX_POINTS = 2048


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
    whoever folds the events starts over too. The file is read CHUNK_BYTES at a time, so memory
    stays bounded however long the file has grown; `bytes_read` counts what was read.
    """

    def __init__(self, path: Path, *, from_end: bool = False) -> None:
        self.path = Path(path)
        self._offset = 0
        self._line = 0
        self._identity: tuple[int, int] | None = None
        self._next_sample = 0
        self.skipped = 0
        self.notes: list[str] = []
        self.restarts = 0
        self.bytes_read = 0
        if from_end:
            self._skip_to_end()

    def _skip_to_end(self) -> None:
        """Start after what the file holds now: only events written from now on are read."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        self._identity = (info.st_dev, info.st_ino)
        self._offset = info.st_size

    def read_new(self) -> list[dict[str, Any]]:
        """Return the complete events written since the last call."""
        return [record for batch in self.batches() for record in batch]

    def batches(self, *, thin: bool = False) -> Iterator[list[dict[str, Any]]]:
        """The complete events written since the last call, a chunk's worth at a time.

        With `thin`, step events more than TAIL_BYTES before the end of the file are not all
        read: one per SAMPLE_BYTES of file is, enough to chart the loss, and the later ones say
        where the run is. Every other kind, and every step in the tail, is read.
        """
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - held open across the yields below
        except FileNotFoundError:
            return
        with handle:
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino)
            if self._identity not in (None, identity) or info.st_size < self._offset:
                self._start_over()
            self._identity = identity
            tail_from = info.st_size - TAIL_BYTES if thin else 0
            handle.seek(self._offset)
            pending = b""
            while chunk := handle.read(CHUNK_BYTES):
                self.bytes_read += len(chunk)
                pending += chunk
                end = pending.rfind(b"\n")
                if end < 0:
                    if len(pending) > MAX_LINE_BYTES:  # no writer of events writes such a line
                        self._note(f"{self.path}: line {self._line + 1} is too long; line skipped")
                        self._offset += len(pending)
                        pending = b""
                    continue
                complete, pending = pending[: end + 1], pending[end + 1 :]
                yield self._parse(complete, tail_from)

    def _parse(self, complete: bytes, tail_from: int) -> list[dict[str, Any]]:
        """The events of `complete` lines that start at the reader's offset; moves past them."""
        events = []
        at = self._offset
        for raw in complete.split(b"\n")[:-1]:
            start, at = at, at + len(raw) + 1
            self._line += 1
            if start < tail_from and raw.startswith(STEP_PREFIX):
                if start < self._next_sample:
                    continue
                self._next_sample = start + SAMPLE_BYTES
            if not raw.strip():
                continue
            try:
                events.append(parse_event(raw, self.path, self._line))
            except RecordError as exc:
                self._note(f"{exc}; line skipped")
        self._offset = at
        return events

    def _note(self, note: str) -> None:
        self.skipped += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(note)

    def _start_over(self) -> None:
        self._offset = 0
        self._line = 0
        self._next_sample = 0
        self.skipped = 0
        self.notes = []
        self.restarts += 1


def fold_new(reader: EventReader, progress: JobProgress) -> JobProgress:
    """`progress` with the events written since `reader`'s last read folded in, in bounded memory
    however long the file (a fresh JobProgress when the file was truncated or replaced)."""
    seen = reader.restarts
    for batch in reader.batches(thin=True):
        if reader.restarts != seen:
            progress, seen = JobProgress(), reader.restarts
        for record in batch:
            progress.apply(record)
    if reader.restarts != seen:
        progress = JobProgress()
    progress.note_skipped(reader)
    return progress


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
    # How many steps each kept point of `curve` and `evals` stands for (see add_point).
    curve_stride: int = 1
    evals_stride: int = 1

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
                self.curve_stride = add_point(
                    self.curve, (self.step, float(self.smooth_loss)), self.curve_stride
                )
        elif kind == "eval":
            self.val_loss = record.get("val_loss")
            self.val_ppl = record.get("val_ppl")
            if self.val_ppl is not None:
                point = (int(record.get("step", self.step)), float(self.val_ppl))
                self.evals_stride = add_point(self.evals, point, self.evals_stride)
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


def add_point(points: list[tuple[int, float]], point: tuple[int, float], stride: int) -> int:
    """Add a (step, value) point to a chart's `points`, keeping at most about MAX_POINTS.

    The steps fall in buckets of `stride` steps; each bucket keeps its first point, and the
    newest point is always kept. When the points pass MAX_POINTS the buckets double in width.
    Returns the stride now in use.
    """
    if len(points) >= 2 and points[-2][0] // stride == points[-1][0] // stride:
        points.pop()  # not its bucket's first: it was kept only as the newest
    points.append(point)
    while len(points) > MAX_POINTS and stride <= abs(points[-1][0] - points[0][0]):
        stride *= 2
        kept: list[tuple[int, float]] = []
        for item in points[:-1]:
            if not kept or kept[-1][0] // stride != item[0] // stride:
                kept.append(item)
        points[:] = [*kept, points[-1]]
    if len(points) > MAX_POINTS:  # steps that do not spread out: keep the newest
        del points[: len(points) - MAX_POINTS]
    return stride


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
    """Fold an events file into a JobProgress (bad lines skipped and noted), in bounded memory."""
    return fold_new(EventReader(path), JobProgress())
