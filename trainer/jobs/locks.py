"""One training run per emotion at a time: advisory file locks held for the run's lifetime.

The operating system drops a lock when its holder dies, even by kill -9, so a crash never leaves
a stale lock behind. A run holds `<emotion>.lock` exclusively. The ranks of a job on several
ranks also hold `<emotion>.ranks.lock`, shared, each for its whole life: so the emotion stays
taken while any rank lives, even one that outlived its launcher for an instant.
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


def ranks_lock_path(home: DataHome, emotion: str) -> Path:
    """The lock file every rank of `emotion`'s job holds shared; it names that job."""
    return home.jobs / ".locks" / f"{emotion}.ranks.lock"


def _open(path: Path, flags: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, flags | os.O_CREAT, 0o644)


def _flock_within(fd: int, operation: int, grace_s: float) -> bool:
    """Take `operation` (with LOCK_NB) on `fd`, retrying for `grace_s`; whether it was taken.

    Probes hold locks for an instant, so only a lock refused for longer counts as held.
    """
    deadline = time.monotonic() + grace_s
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)


def _write_id(fd: int, job_id: str) -> None:
    # Overwrite in place, then cut: a reader never sees an empty file, only an id.
    data = job_id.encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


class EmotionLock:
    """An exclusive, non-blocking lock on one emotion; the file records the holder's job id."""

    def __init__(self, home: DataHome, emotion: str) -> None:
        self.emotion = emotion
        self.path = lock_path(home, emotion)
        self.ranks_path = ranks_lock_path(home, emotion)
        self._fd: int | None = None

    def acquire(self, job_id: str) -> None:
        """Take the lock for `job_id`, or raise naming the job that holds it.

        A probe (`is_locked`) holds a lock for an instant, so a refusal is retried for
        PROBE_GRACE_S: only a real run, which holds the lock exclusively, refuses for longer.
        Ranks still alive from an earlier job of the emotion refuse it too; the ranks lock is
        then made to name this job, for this job's own ranks to hold.
        """
        fd = _open(self.path, os.O_RDWR)
        if not _flock_within(fd, fcntl.LOCK_EX, PROBE_GRACE_S):
            os.close(fd)
            raise PoetstudioError(busy_message(self.emotion, wait_for_holder(self.path)))
        ranks = _open(self.ranks_path, os.O_RDWR)
        try:
            if not _flock_within(ranks, fcntl.LOCK_EX, PROBE_GRACE_S):
                os.close(fd)
                raise PoetstudioError(busy_message(self.emotion, wait_for_holder(self.ranks_path)))
            _write_id(ranks, job_id)
        finally:
            os.close(ranks)  # also lets go of it: the ranks take it shared
        _write_id(fd, job_id)
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

    The probe takes the run's lock shared and writes nothing: probes never block one another,
    and the file only ever names a real run. Then it asks whether any rank still holds the
    ranks lock (a probe of that takes it exclusively for an instant, so it retries).
    """
    path = lock_path(home, emotion)
    fd = _open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return wait_for_holder(path)
    finally:
        os.close(fd)
    return ranks_holder(home, emotion)


def ranks_holder(home: DataHome, emotion: str) -> str | None:
    """The id of the job whose ranks of `emotion` still live, or None when no rank does."""
    path = ranks_lock_path(home, emotion)
    fd = _open(path, os.O_RDONLY)
    try:
        if _flock_within(fd, fcntl.LOCK_EX, PROBE_GRACE_S):
            return None
    finally:
        os.close(fd)
    return wait_for_holder(path)


def ranks_alive(home: DataHome, emotion: str, job_id: str) -> bool:
    """Whether any rank of job `job_id` still lives (its launcher may be gone).

    The ranks lock names the last job that took it, so another job's ranks are told apart
    without waiting on a lock.
    """
    if holder(ranks_lock_path(home, emotion)) != job_id:
        return False
    return ranks_holder(home, emotion) == job_id


def hold_as_rank(home: DataHome, emotion: str) -> int:
    """Hold `emotion`'s ranks lock shared for the rest of this rank's life; return its fd.

    The launcher, which holds the run's lock, made the file name its job; a probe may hold it
    for an instant, so this waits for that to pass.
    """
    fd = _open(ranks_lock_path(home, emotion), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def busy_message(emotion: str, job_id: str) -> str:
    """The one-line refusal for a second run of the same emotion."""
    return (
        f"a {emotion} model is already training (job {job_id}); watch it with "
        f"`poetstudio jobs follow {job_id}` or stop it with `poetstudio jobs stop {job_id}`"
    )
