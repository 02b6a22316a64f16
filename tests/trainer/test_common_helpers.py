"""The small shared helpers in trainer/common: checksums, pinned wheels, versions, perplexity,
first lines of errors and durable event lines."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trainer.common import wheels
from trainer.common.errors import PoetstudioError, first_line
from trainer.common.hashing import CHUNK, sha256_file
from trainer.common.perplexity import MAX_LOSS, perplexity
from trainer.common.versions import package_versions
from trainer.common.wheels import PinnedWheel, fetch_wheel
from trainer.training.events import emit, read_progress


def test_sha256_file_matches_hashlib_across_chunk_boundaries(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def _pin(data: bytes) -> PinnedWheel:
    return PinnedWheel("tiny-pkg", "1.0", "tiny_pkg-1.0-py3-none-any.whl", _sha(data))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_pip(monkeypatch: pytest.MonkeyPatch, body: bytes | None, calls: list[list[str]]) -> None:
    """pip that writes `body` as the wheel (None: fails as pip does for a missing package)."""

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if body is None:
            return subprocess.CompletedProcess(command, 1, "", "Collecting\nERROR: No matching\n")
        folder = Path(command[command.index("-d") + 1])
        (folder / "tiny_pkg-1.0-py3-none-any.whl").write_bytes(body)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", run)


def test_a_verified_wheel_already_there_is_not_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, None, calls)
    (tmp_path / "tiny_pkg-1.0-py3-none-any.whl").write_bytes(b"wheel")
    assert fetch_wheel(_pin(b"wheel"), tmp_path) == tmp_path / "tiny_pkg-1.0-py3-none-any.whl"
    assert calls == []


def test_a_damaged_wheel_is_replaced_by_a_fresh_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    _fake_pip(monkeypatch, b"wheel", calls)
    (tmp_path / "tiny_pkg-1.0-py3-none-any.whl").write_bytes(b"damaged")
    notes: list[str] = []
    wheel = fetch_wheel(_pin(b"wheel"), tmp_path, notes.append)
    assert wheel.read_bytes() == b"wheel"
    assert notes == ["downloading tiny-pkg==1.0 with pip"]
    assert calls[0][1:4] == ["-m", "pip", "download"] and calls[0][-1] == "tiny-pkg==1.0"


def test_a_download_with_the_wrong_sha256_is_removed_and_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pip(monkeypatch, b"something else", [])
    with pytest.raises(PoetstudioError, match="does not match the pinned tiny-pkg==1.0"):
        fetch_wheel(_pin(b"wheel"), tmp_path)
    assert not (tmp_path / "tiny_pkg-1.0-py3-none-any.whl").exists()


def test_a_pip_failure_is_one_line_quoting_what_pip_said_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_pip(monkeypatch, None, [])
    with pytest.raises(PoetstudioError) as raised:
        fetch_wheel(_pin(b"wheel"), tmp_path)
    assert str(raised.value) == "could not download tiny-pkg==1.0 with pip: ERROR: No matching"


def test_package_versions_names_a_missing_package_as_told() -> None:
    found = package_versions("pytest", "no-such-package-poetstudio", missing="unknown")
    assert found == {"pytest": pytest.__version__, "no-such-package-poetstudio": "unknown"}
    assert package_versions("no-such-package-poetstudio") == {"no-such-package-poetstudio": None}


def test_perplexity_is_exp_of_the_loss_and_capped() -> None:
    assert perplexity(2.0) == pytest.approx(math.exp(2.0))
    assert perplexity(1e6) == math.exp(MAX_LOSS)


def test_first_line_quotes_only_the_first_line_or_names_the_type() -> None:
    assert first_line(ValueError("\n  bad header\nTraceback (most recent call last)")) == (
        "bad header"
    )
    assert first_line(KeyError()) == "KeyError"
    assert first_line(OSError("   ")) == "OSError"


def test_emitted_events_are_whole_lines_a_reader_folds(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    emit(path, "start", emotion="joy", total_steps=4)
    emit(path, "step", step=2, loss=1.5)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["start", "step"]
    progress = read_progress(path)
    assert (progress.status, progress.emotion, progress.step) == ("running", "joy", 2)
    with pytest.raises(ValueError, match="unknown event kind"):
        emit(path, "finished")
    assert len(path.read_text().splitlines()) == 2
