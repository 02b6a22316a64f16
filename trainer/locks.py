"""One training run per emotion at a time: an advisory file lock held for the run's lifetime.

The operating system drops the lock when the holder dies, even by kill -9, so a crash never leaves
a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from trainer.errors import PoetstudioError
from trainer.home import DataHome


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
        """Take the lock for `job_id`, or raise naming the job that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PoetstudioError(busy_message(self.emotion, holder(self.path))) from None
        os.ftruncate(fd, 0)
        os.write(fd, job_id.encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder(path: Path) -> str:
    """The job id written into a lock file, or '' if unknown."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def is_locked(home: DataHome, emotion: str) -> str | None:
    """The id of the job training `emotion` right now, or None when no run holds the lock."""
    probe = EmotionLock(home, emotion)
    try:
        probe.acquire("probe")
    except PoetstudioError:
        return holder(probe.path) or "unknown"
    probe.release()
    return None


def busy_message(emotion: str, job_id: str) -> str:
    """The one-line refusal for a second run of the same emotion."""
    return (
        f"a {emotion} model is already training (job {job_id}); watch it with "
        f"`poetstudio jobs follow {job_id}` or stop it with `poetstudio jobs stop {job_id}`"
    )
