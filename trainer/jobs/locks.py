"""One training run per emotion at a time: an advisory file lock held for the run's lifetime.

The operating system drops the lock when the holder dies, even by kill -9, so a crash never leaves
a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

# How long a run waits for a probe's instant of shared lock to pass before it counts as refused.
PROBE_GRACE_S = 0.5


def lock_path(home: DataHome, emotion: str) -> Path:
    """The lock file of `emotion`'s training runs."""
    return home.jobs / ".locks" / f"{emotion}.lock"


class EmotionLock:
    """An exclusive, non-blocking lock on one emotion; the file records the holder's job id."""

    def __init__(self, home: DataHome, emotion: str) -> None:
        self.emotion = emotion
        self.path = lock_path(home, emotion)
        self._fd: int | None = None

    def acquire(self, job_id: str) -> None:
        """Take the lock for `job_id`, or raise naming the job that holds it.

        A probe (`is_locked`) holds a shared lock for an instant, so a refusal is retried for
        PROBE_GRACE_S: only a real run, which holds the lock exclusively, refuses for longer.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + PROBE_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise PoetstudioError(
                        busy_message(self.emotion, wait_for_holder(self.path))
                    ) from None
                time.sleep(0.02)
        # Overwrite in place, then cut: a reader never sees an empty file, only an id.
        data = job_id.encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it), leaving the file naming no one."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None


def holder(path: Path) -> str:
    """The job id written into a lock file, or '' if unknown."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def wait_for_holder(path: Path, timeout_s: float = 1.0) -> str:
    """The id of the run holding `path`, waiting briefly for a run that has just taken it to
    write its id; 'unknown' if none appears."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = holder(path)
        if found or time.monotonic() >= deadline:
            return found or "unknown"
        time.sleep(0.02)


def is_locked(home: DataHome, emotion: str) -> str | None:
    """The id of the job training `emotion` right now, or None when no run holds the lock.

    The probe takes a shared lock and writes nothing: probes never block one another, and the
    file only ever names a real run.
    """
    path = lock_path(home, emotion)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return wait_for_holder(path)
    finally:
        os.close(fd)
    return None


def busy_message(emotion: str, job_id: str) -> str:
    """The one-line refusal for a second run of the same emotion."""
    return (
        f"a {emotion} model is already training (job {job_id}); watch it with "
        f"`poetstudio jobs follow {job_id}` or stop it with `poetstudio jobs stop {job_id}`"
    )
