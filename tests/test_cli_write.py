"""`poetstudio write`: plain text when piped, streaming on a terminal, saving, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models
from studio.cli import app
from studio.cli import write as write_cli
from tests.conftest import build_tiny_lora
from trainer.home import DataHome

SEED = "The lamps are out [bold]along[/] the quay"
QUICK = ["--max-lines", "4", "--max-tokens", "30", "--seed", "11"]


@pytest.fixture
def runner(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """A CLI runner over a home with a joy model and no bundled models."""
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-bundled")
    build_tiny_lora(tiny_base, home.models / "joy", "joy")
    return CliRunner()


def write(runner: CliRunner, *args: str) -> object:
    return runner.invoke(app, ["write", *args])


def test_piped_output_is_the_plain_poem(runner: CliRunner) -> None:
    result = write(runner, "--emotion", "joy", "--first-line", SEED, *QUICK)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(SEED + "\n")
    assert result.stdout.count(SEED) == 1
    assert "tokens/s" not in result.stdout and "\x1b" not in result.stdout


def test_the_same_seed_prints_the_same_poems(runner: CliRunner) -> None:
    first = write(runner, "-e", "joy", "-f", SEED, "-n", "2", *QUICK)
    second = write(runner, "-e", "joy", "-f", SEED, "-n", "2", *QUICK)
    assert first.exit_code == 0 and first.stdout == second.stdout
    poems = first.stdout.split("\n* * *\n\n")
    assert len(poems) == 2 and poems[0] != poems[1]


def test_on_a_terminal_it_streams_and_reports_stats(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_cli, "_stdout_is_tty", lambda: True)
    result = write(runner, "-e", "joy", "-f", SEED, *QUICK)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(SEED + "\n")
    assert "tokens/s" in result.stderr and "seed 11" in result.stderr


def test_out_appends_entries_to_a_poems_file(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "mine.md"
    out.write_text("# kept\n")
    result = write(runner, "-e", "joy", "-f", SEED, "-n", "2", "--out", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# kept\n")
    assert text.count("- emotion: joy") == 2
    assert f"- first line: {SEED}" in text
    assert "seed 11" in text and "seed 12" in text
    assert f"saved to {out}" in result.stderr


def test_default_out_is_never_implied(runner: CliRunner, home: DataHome) -> None:
    assert write(runner, "-e", "joy", *QUICK).exit_code == 0
    assert not home.poems_file.exists()


def test_format_jsonl_prints_entries(runner: CliRunner) -> None:
    result = write(runner, "-e", "joy", "-f", SEED, "-n", "2", "--format", "jsonl", *QUICK)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["emotion"] for row in rows] == ["joy", "joy"]
    assert rows[0]["text"].startswith(SEED + "\n")
    assert rows[0]["settings"]["seed"] == 11


def test_unwritable_out_fails_but_prints_the_poem(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = write(runner, "-e", "joy", "-f", SEED, "--out", str(blocker / "p.md"), *QUICK)
    assert result.exit_code == 1
    assert result.stdout.startswith(SEED + "\n")
    assert result.stderr.startswith("error: could not save the poem")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "happy"], "unknown emotion 'happy'"),
        (["-e", "../joy"], "path-like"),
        (["-e", "anger"], "poetstudio train --emotion anger"),
        (["-e", "joy", "--temperature", "-1"], "temperature must be >= 0"),
        (["-e", "joy", "--top-p", "2"], "top-p"),
        (["-e", "joy", "--format", "html"], "unknown poem format"),
        (["-e", "joy", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_input_is_one_clear_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = write(runner, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_no_models_at_all(runner: CliRunner, home: DataHome) -> None:
    import shutil

    shutil.rmtree(home.models / "joy")
    result = write(runner, "-e", "joy")
    assert result.exit_code == 1
    assert "bundled" in result.stderr and "poetstudio train" in result.stderr


def test_a_corrupt_model_is_reported(runner: CliRunner, home: DataHome) -> None:
    (home.models / "joy" / "poetstudio.json").write_text("{oops")
    result = write(runner, "-e", "joy")
    assert result.exit_code == 1
    assert "corrupt manifest" in result.stderr


def test_an_overlong_first_line_is_truncated_with_a_note(runner: CliRunner) -> None:
    result = write(runner, "-e", "joy", "-f", "grey sea " * 400, *QUICK)
    assert result.exit_code == 0, result.output
    assert "note: the first line was longer" in result.stderr
