"""Watching training jobs: each poll reads only what changed since the last one.

The studio looks at its jobs every second. A `JobWatch` keeps one incremental reader on a job's
events file, so a poll reads only the bytes appended since the last one (a half-written last line
waits for the next poll; a truncated or replaced file is read again from its start), and the first
poll of a long file reads it in bounded memory (trainer/training/events.py `fold_new`). It reads
job.json again only when that file changes: a spawn writes the pid, a resume a new one. A job
whose process is gone is final: neither its files nor its process are looked at again until one
of its two files changes, as when it is resumed. A `JobWatcher` keeps one JobWatch per job of a
data home.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import (
    BROKEN,
    JOB_FILE,
    JobInfo,
    broken_job,
    job_alive,
    job_dir,
    job_folders,
    read_job,
)
from trainer.training.events import EVENTS_FILE, EventReader, JobProgress, fold_new

# What tells that a file changed: where it lives on disk, its size and its modification time.
Signature = tuple[int, int, int, int] | None


def _signature(path: Path) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class JobWatch:
    """One job folder, followed incrementally: `poll` returns its listing as of now."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._reader = EventReader(self.path / EVENTS_FILE)
        self._progress = JobProgress()
        self._job: dict[str, Any] = {}
        self._broken = ""  # why job.json cannot be read, when it cannot
        self._seen: tuple[Signature, Signature] | None = None
        self._info: JobInfo | None = None

    def poll(self) -> JobInfo:
        """The job's listing now; its progress is a copy that later polls leave alone."""
        # Taken before reading, so that whatever is written meanwhile is read at the next poll.
        seen = (_signature(self.path / JOB_FILE), _signature(self.path / EVENTS_FILE))
        if self._info is not None and not self._info.alive and seen == self._seen:
            return self._info
        if self._seen is None or seen[0] != self._seen[0]:
            self._read_job()
        self._seen = seen
        if self._broken:
            self._info = broken_job(self.path, self._broken)
            return self._info
        # Liveness before events: a process that writes its final event and exits in between
        # is then seen gone together with that event, never gone without it.
        alive = job_alive(self.path, self._job)
        self._info = JobInfo(
            id=self.path.name,
            path=self.path,
            emotion=str(self._job.get("emotion", "")),
            progress=self._read_events(),
            alive=alive,
        )
        return self._info

    def _read_job(self) -> None:
        try:
            self._job, self._broken = read_job(self.path), ""
        except PoetstudioError as exc:
            self._job, self._broken = {}, str(exc)

    def _read_events(self) -> JobProgress:
        self._progress = fold_new(self._reader, self._progress)
        # A copy: the UI draws it on another thread while the next poll folds more events in.
        progress = self._progress
        return replace(progress, curve=list(progress.curve), evals=list(progress.evals))


class JobWatcher:
    """Every job of a data home, newest first, each kept current by its own JobWatch.

    Not thread-safe: one poller at a time.
    """

    def __init__(self, home: DataHome) -> None:
        self.home = home
        self._watches: dict[str, JobWatch] = {}

    def poll(self) -> list[JobInfo]:
        """The listing of every job now; jobs whose folder went away are dropped."""
        folders = job_folders(self.home)
        self._watches = {p.name: self._watches.get(p.name) or JobWatch(p) for p in folders}
        return [watch.poll() for watch in self._watches.values()]


def follow(
    home: DataHome,
    job_id: str,
    on_update: Callable[[JobProgress], None],
    poll_s: float = 0.25,
    should_quit: Callable[[], bool] | None = None,
) -> JobProgress:
    """Call `on_update` with the job's progress as events arrive, until it ends; return the last.

    The job counts as ended when its process is gone (a resumed job's events file holds the final
    event of its earlier run, so that alone does not end it).
    """
    watch = JobWatch(job_dir(home, job_id))
    while True:
        info = watch.poll()
        progress = info.progress
        if info.state == BROKEN:
            raise PoetstudioError(progress.message)
        if not info.alive:
            if progress.status in ("pending", "running"):
                progress.status = "interrupted"
                path = info.path
                progress.message = f"the training process ended without a final event; see {path}"
            on_update(progress)
            return progress
        on_update(progress)
        if should_quit is not None and should_quit():
            return progress
        time.sleep(poll_s)
