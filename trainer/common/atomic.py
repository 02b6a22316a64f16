"""Writes that never leave a half-written file behind: temp file, fsync, rename.

Folders (models, datasets, bases, checkpoints) are written into a staging folder and swapped in
by one routine, `replace_dir`, that a crash at any point leaves with the old or the new folder
whole; `recover_swaps` puts back a folder that a crash left only set aside. A staging folder is
locked by its writer while it is written, so one that a kill -9 left behind is told apart from
one being written, and `sweep_staging` removes it. Appends to a file land whole or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainer.common.errors import PoetstudioError

STAGING = ".staging-"
# A staging folder whose lock is free may still be one its writer made an instant ago and has
# not locked yet; only one left unchanged this long is its dead writer's.
STALE_STAGING_S = 10.0


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def live_dir(final: Path) -> Path:
    """Where a folder swap of `final` really happens: `final`, or its target if it is a symlink.

    A symlinked `models/<emotion>` or `datasets/<name>` is followed, deliberately: the target is
    replaced and the link is kept, so a model or dataset the user keeps on another disk stays
    there. A link that loops, or points into a folder that does not exist, is refused.
    """
    final = Path(final)
    if not final.is_symlink():
        return final
    try:
        target = final.resolve(strict=False)
    except (OSError, RuntimeError):
        raise PoetstudioError(
            f"{final} is a symlink that loops; remove it or point it at a folder"
        ) from None
    if not target.parent.is_dir():
        raise PoetstudioError(
            f"{final} is a symlink to {target}, whose folder does not exist; "
            "create that folder or remove the link"
        )
    return target


def aside_path(final: Path) -> Path:
    """Where replace_dir sets the previous folder aside during a swap: `.<name>.old`."""
    return final.with_name(f".{final.name}.old")


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty staging folder for a new `final`; on success swap it in with replace_dir.

    The staging folder lies beside the live folder (a symlink's target), so the swap is a rename
    on one file system. On any error, of any type, it is removed and `final` stays as it was.
    """
    live = live_dir(final)
    live.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{live.name}{STAGING}", dir=live.parent))
    # Held until the swap is done: the system lets go of it when this process dies, however.
    held = os.open(staged, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield staged
        replace_dir(staged, live)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    finally:
        os.close(held)


def replace_dir(staged: Path, final: Path) -> None:
    """Move a fully written folder `staged` into place at `final`, replacing any old one.

    The old folder is renamed aside (`.<name>.old`) first, so a crash leaves either the old or
    the new one whole, and `recover_dir` puts an aside folder back if the live one is missing.
    A symlinked `final` is followed (see `live_dir`); `staged` must be on the target's file system.
    If this raises an OSError, `final` is as it was before the call; the one case where the
    previous folder could not be put back raises PoetstudioError saying where it is.
    """
    final = live_dir(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    old = aside_path(final)
    recover_dir(final)
    if os.path.lexists(old):
        _remove(old)  # left by an earlier swap whose clean-up failed; `final` is the live one
    if os.path.lexists(final):
        os.replace(final, old)
    try:
        os.replace(staged, final)
    except BaseException as exc:
        if os.path.lexists(old) and not os.path.lexists(final):
            try:
                os.replace(old, final)
            except OSError:
                reason = getattr(exc, "strerror", None) or exc
                raise PoetstudioError(
                    f"could not move the new folder into {final} ({reason}) nor put the previous "
                    f"one back; it is whole at {old}: rename it to {final}"
                ) from None
        raise
    fsync_dir(final.parent)
    # The new folder is in place: failing to delete the old one must not fail the swap. What is
    # left is stale and the next swap removes it.
    with contextlib.suppress(OSError):
        _remove(old)


def recover_dir(final: Path) -> bool:
    """Put back the folder a swap cut short (a crash between its two renames) left only aside.

    Returns True when `final` was missing and its `.<name>.old` was renamed back to it.
    """
    live = live_dir(final)
    old = aside_path(live)
    if os.path.lexists(live) or not old.is_dir():
        return False
    os.replace(old, live)
    fsync_dir(live.parent)
    return True


def recover_swaps(folder: Path) -> list[Path]:
    """Recover every folder in `folder` that a cut-short swap left only as `.<name>.old`.

    Called where the data home is opened; a folder that cannot be recovered is left as it is,
    for the next swap of it to report. Staging folders left by dead writers are swept too
    (`sweep_staging`). Returns the folders put back.
    """
    sweep_staging(folder)
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return []
    recovered = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") and name.endswith(".old") and len(name) > len("..old"):
            final = entry.with_name(name[1 : -len(".old")])
        elif entry.is_symlink():
            final = entry  # a link whose target's swap was cut short
        else:
            continue
        try:
            if recover_dir(final):
                recovered.append(final)
        except (OSError, PoetstudioError):
            continue
    return recovered


def sweep_staging(folder: Path) -> list[Path]:
    """Remove the staging folders in `folder` whose writer died (kill -9, a power cut).

    A writer holds a lock on its staging folder (`staged_dir`); a folder whose lock is free and
    that has not changed for STALE_STAGING_S is left from a dead one. Returns those removed.
    """
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return []
    swept = []
    for entry in entries:
        if not (entry.name.startswith(".") and STAGING in entry.name) or entry.is_symlink():
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if time.time() - os.fstat(fd).st_mtime < STALE_STAGING_S:
                continue
            shutil.rmtree(entry)
            swept.append(entry)
        except OSError:
            continue  # being written (the lock is held), or not ours to remove
        finally:
            os.close(fd)
    return swept


def _remove(path: Path) -> None:
    """Remove a folder, a file or a symlink (never what a symlink points to)."""
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)


def append_durably(path: Path, text: str, *, fresh_line: bool = False) -> None:
    """Append `text` to `path` whole, then fsync; on any failure cut the file back as it was.

    The file is never truncated below its old length: a write that fails midway (a full disk)
    is undone byte for byte, so no partial entry is left. Appends by poetstudio processes are
    serialised with an advisory lock. With `fresh_line`, a newline goes first when the file's
    last byte is not one (an earlier write by something else was cut short).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        data = text.encode("utf-8")
        if fresh_line and size and _last_byte(path, size) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
    finally:
        os.close(fd)  # also releases the lock


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        return handle.read(1)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries to disk, so a rename into it survives a crash (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
