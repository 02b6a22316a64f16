"""Labelled poem datasets in the data home: `<home>/datasets/<name>/poems.jsonl` + `manifest.json`.

One JSON object per line: id, label, split ("train"/"valid"), counts (the 8 EmoLex emotions),
lines, words, gid (book id or null) and text (lines joined by "\\n"). The raw counts are stored so
that label rules can change without relabelling (`PoemRecord.relabel`).

The id and the train/valid split both come from a hash of the text, so they are stable across
rebuilds and identical poems always fall on the same side. A build is written into a staging
folder and moved into place only when complete: a failed build leaves the previous dataset whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.common.atomic import staged_dir
from trainer.common.emotions import EMOTIONS, LABELS, TOKEN_PATTERN, count_vector, label_counts
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.records import (
    COUNT,
    NUMBER,
    STRING,
    Kind,
    mapping,
    obj,
    one_of,
    optional,
    parse_object,
    read_object,
    required,
)
from trainer.common.versions import package_versions
from trainer.corpus.poems import SPLIT_RULES, SPLITS, Chunk, split_poems
from trainer.corpus.sources import Corpus, current_source, load_source

FORMAT = 1
POEMS_FILE = "poems.jsonl"
MANIFEST_FILE = "manifest.json"
VALID_FRACTION = 0.05
_BUCKETS = 10_000
# What readers need of a dataset: every poem line, and the manifest's counts
# (trainer/common/records.py).
POEM_SCHEMA = {
    "id": required(STRING),
    "text": required(STRING),
    "gid": required(STRING, nullable=True),
    "counts": required(mapping(COUNT)),
    "label": required(one_of(*LABELS)),
    "split": required(one_of("train", "valid")),
    "lines": required(COUNT),
    "words": required(COUNT),
}
MANIFEST_SCHEMA = {
    "format": optional(COUNT),
    "name": optional(STRING),
    "created": optional(STRING),
    "poems": required(COUNT),
    "counts": required(mapping(COUNT)),
}
_LABEL_ROW = obj(
    poems=required(COUNT),
    train=optional(COUNT),
    valid=required(COUNT),
    mean_lines=required(NUMBER),
    mean_words=required(NUMBER),
)
DESCRIBED_SCHEMA = {
    **MANIFEST_SCHEMA,
    "name": required(STRING),
    "created": required(STRING),
    "source": required(obj(kind=required(STRING), path=required(STRING), sha256=required(STRING))),
    "split": required(obj(name=required(STRING))),
    "labeller": required(obj(min_margin=required(COUNT))),
    # corpus stats charts one row per label: an empty table has nothing to chart.
    "labels": required(
        Kind(
            "an object with a row per label",
            lambda v: isinstance(v, dict) and bool(v),
            items=_LABEL_ROW,
        )
    ),
}


@dataclass(slots=True)
class PoemRecord:
    """One labelled poem of a dataset."""

    id: str
    text: str
    gid: str | None
    counts: dict[str, int]
    label: str
    split: str
    lines: int
    words: int

    def relabel(self, min_margin: int = 1) -> str:
        """The label under a different `min_margin`, from the stored counts."""
        return label_counts(self.counts, min_margin)


def check_dataset_name(name: str) -> str:
    """Return `name` if it can name a folder in the data home's datasets, else raise."""
    if not name or any(sep in name for sep in ("/", "\\", "..")) or name.startswith("."):
        raise PoetstudioError(f"refusing path-like dataset name {name!r}; use a name like 'clean'")
    return name


def dataset_dir(home: DataHome, name: str) -> Path:
    """Folder of the dataset `name` (which need not exist yet)."""
    return home.datasets / check_dataset_name(name)


def build_command(name: str) -> str:
    """The command that builds the dataset `name`."""
    if name in SPLITS:
        return f"poetstudio corpus build --split {name}"
    return f"poetstudio corpus build --name {name}"


def load_manifest(home: DataHome, name: str, describe: bool = False) -> dict[str, Any]:
    """The checked manifest of a built dataset; raises naming the build command when it is missing.

    `describe` also requires the fields that describe a build (source, split, labeller, labels),
    which `corpus stats` shows; training needs only the counts.
    """
    path = dataset_dir(home, name) / MANIFEST_FILE
    if not path.is_file() or not (path.parent / POEMS_FILE).is_file():
        raise PoetstudioError(f"dataset {name!r} is not built; run `{build_command(name)}`")
    schema = DESCRIBED_SCHEMA if describe else MANIFEST_SCHEMA
    return read_object(path, schema, "dataset manifest", fix=_rebuild(name))


def _rebuild(name: str) -> str:
    return f"rebuild it with `{build_command(name)}`"


def iter_poems(
    home: DataHome,
    name: str,
    split: str | None = None,
    labels: Iterable[str] | None = None,
) -> Iterator[PoemRecord]:
    """Yield the poems of dataset `name`, optionally only one split and only some labels.

    Each line is checked (trainer/common/records.py); a damaged one raises a one-line error naming
    the file and its line number.
    """
    load_manifest(home, name)
    wanted = None if labels is None else frozenset(labels)
    # Cheap substring checks skip most unwanted lines before decoding them; the decoded fields
    # are then checked exactly, so a poem quoting such a substring is still filtered correctly.
    split_key = None if split is None else f'"split": "{split}"'.encode()
    label_keys = None if wanted is None else tuple(f'"label": "{x}"'.encode() for x in wanted)
    path = dataset_dir(home, name) / POEMS_FILE
    fix = _rebuild(name)
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            # Only a line shaped like a record may be skipped unread: a cut or garbage line is
            # decoded, and reported, whatever the filter.
            shaped = line[:1] == b"{" and line.rstrip()[-1:] == b"}"
            if shaped and split_key is not None and split_key not in line:
                continue
            if shaped and label_keys is not None and not any(key in line for key in label_keys):
                continue
            data = parse_object(line, POEM_SCHEMA, "dataset file", path, number, fix)
            if split is not None and data["split"] != split:
                continue
            if wanted is not None and data["label"] not in wanted:
                continue
            yield PoemRecord(
                data["id"],
                data["text"],
                data["gid"],
                data["counts"],
                data["label"],
                data["split"],
                data["lines"],
                data["words"],
            )


def text_hash(text: str) -> str:
    """Hex digest that names a poem and decides its split."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def split_of(digest: str, valid_fraction: float = VALID_FRACTION) -> str:
    """ "valid" for a stable `valid_fraction` of hashes, else "train"."""
    bucket = int(digest[-8:], 16) % _BUCKETS
    return "valid" if bucket < valid_fraction * _BUCKETS else "train"


class _LabelTally:
    """Per-label poem, line and word totals for the manifest."""

    def __init__(self) -> None:
        self.poems = dict.fromkeys(LABELS, 0)
        self.train = dict.fromkeys(LABELS, 0)
        self.lines = dict.fromkeys(LABELS, 0)
        self.words = dict.fromkeys(LABELS, 0)

    def add(self, label: str, split: str, lines: int, words: int) -> None:
        self.poems[label] += 1
        self.train[label] += split == "train"
        self.lines[label] += lines
        self.words[label] += words

    def as_dict(self) -> dict[str, dict[str, float]]:
        result = {}
        for label in LABELS:
            poems = self.poems[label]
            result[label] = {
                "poems": poems,
                "train": self.train[label],
                "valid": poems - self.train[label],
                "mean_lines": round(self.lines[label] / poems, 2) if poems else 0.0,
                "mean_words": round(self.words[label] / poems, 2) if poems else 0.0,
            }
        return result


def write_poems(path: Path, chunks: list[Chunk], min_margin: int, tally: _LabelTally) -> None:
    """Label `chunks` and write them as JSON lines to `path`."""
    seen: dict[str, int] = {}
    dumps = json.dumps
    batch: list[str] = []
    with open(path, "w", encoding="utf-8") as handle:
        for chunk in chunks:
            digest = text_hash(chunk.text)
            occurrence = seen.get(digest, 0) + 1
            seen[digest] = occurrence
            poem_id = digest[:16] if occurrence == 1 else f"{digest[:16]}-{occurrence}"
            counts = dict(zip(EMOTIONS, count_vector(chunk.text), strict=True))
            label = label_counts(counts, min_margin)
            split = split_of(digest)
            tally.add(label, split, chunk.lines, chunk.words)
            record = {
                "id": poem_id,
                "label": label,
                "split": split,
                "counts": counts,
                "lines": chunk.lines,
                "words": chunk.words,
                "gid": chunk.gid,
                "text": chunk.text,
            }
            batch.append(dumps(record, ensure_ascii=False))
            if len(batch) >= 4096:
                handle.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            handle.write("\n".join(batch) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build_dataset(
    home: DataHome,
    split: str = "clean",
    *,
    min_margin: int = 1,
    name: str | None = None,
    corpus: Corpus | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Read the fetched corpus, split it, label it and write dataset `name` (default: the split).

    Returns the manifest. Raises PoetstudioError for unusable input; the previous dataset of the
    same name stays intact on any failure.
    """
    if split not in SPLITS:
        raise PoetstudioError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if min_margin < 1:
        raise PoetstudioError("--min-margin must be at least 1")
    name = name or split
    final = dataset_dir(home, name)
    stage = on_stage or (lambda _message: None)
    started = time.perf_counter()
    if corpus is None:
        stage("reading corpus")
        corpus = load_source(current_source(home))
    stage(f"splitting {len(corpus.lines):,} lines ({split})")
    chunks, stats = split_poems(corpus, split)
    if not chunks:
        raise PoetstudioError(
            f"the {split} split found no poems in {corpus.source.path}; "
            "check the source or try --split autocompose"
        )
    home.datasets.mkdir(parents=True, exist_ok=True)
    # staged_dir swaps the finished build in whole, and removes it on any failure.
    with staged_dir(final) as staged:
        stage(f"labelling and writing {len(chunks):,} poems")
        tally = _LabelTally()
        write_poems(staged / POEMS_FILE, chunks, min_margin, tally)
        per_label = tally.as_dict()
        manifest = {
            "format": FORMAT,
            "name": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": {**corpus.source.as_dict(), "read": _report_dict(corpus)},
            "split": {"name": split, "rules": SPLIT_RULES[split], "stats": stats.as_dict()},
            "labeller": {
                "lexicon": "NRC Emotion Lexicon (EmoLex) from the installed nrclex package",
                "citation": "Mohammad & Turney (2013), Computational Intelligence 29(3)",
                "lowercase": True,
                "token_pattern": TOKEN_PATTERN,
                "min_margin": min_margin,
                "rule": "no emotion words: neutral; top emotion leading by min_margin: that "
                "emotion; otherwise: mixed",
            },
            "valid_fraction": VALID_FRACTION,
            "poems": len(chunks),
            "counts": {label: per_label[label]["poems"] for label in LABELS},
            "labels": per_label,
            "versions": {
                "python": platform.python_version(),
                **package_versions("poetstudio", "nrclex", missing="unknown"),
            },
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        (staged / MANIFEST_FILE).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return manifest


def _report_dict(corpus: Corpus) -> dict[str, Any]:
    report = corpus.report
    return {
        "files": report.files,
        "lines": report.lines,
        "bad_json": report.bad_json,
        "bad_utf8": report.bad_utf8,
    }
