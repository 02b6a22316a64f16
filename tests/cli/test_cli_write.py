"""`poetstudio write`: plain text when piped, streaming on a terminal, saving, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app
from studio.cli import write as write_cli
from studio.core.generation.settings import SamplingParams
from tests.helpers.models import build_tiny_lora
from trainer.common.home import DataHome

SEED = "The lamps are out [bold]along[/] the quay"
QUICK = ["--max-lines", "4", "--max-tokens", "30", "--seed", "11"]


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
    assert f"strength {SamplingParams().strength:.2f}" in result.stderr


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


def test_a_form_shapes_the_poem_and_its_record(runner: CliRunner) -> None:
    args = ["-e", "joy", "--form", "couplets", "--syllables", "3", "--seed", "5"]
    result = write(runner, *args, "--format", "jsonl", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["settings"]["form"] == "couplets" and row["settings"]["syllables"] == "3"
    assert len([line for line in row["text"].split("\n") if line.strip()]) == 4


def test_a_saved_record_names_its_version_backend_dtype_and_processor(runner: CliRunner) -> None:
    from studio.core.generation.machine import cpu_name
    from studio.core.poemfile import RECORD_VERSION

    result = write(runner, "-e", "joy", "--format", "jsonl", "--precision", "fp32", *QUICK)
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["version"] == RECORD_VERSION and row["runtime"] == f"torch fp32 on {cpu_name()}"


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
        (["-e", "joy", "--temperature", "-1"], "temperature must be 0 (greedy) or a number"),
        (["-e", "joy", "--top-p", "2"], "top-p"),
        (["-e", "joy", "--format", "html"], "unknown poem format"),
        (["-e", "joy", "--device", "tpu"], "unknown device"),
        (["-e", "joy", "--strength", "-1"], "strength must be a number from 0 to 5"),
        (["-e", "joy", "--strength", "6"], "strength must be a number from 0 to 5"),
        (["-e", "joy", "--strength", "nan"], "strength must be a number from 0 to 5"),
        (["-e", "joy", "--strength", "inf"], "strength must be a number from 0 to 5"),
        (["-e", "joy+happy"], "unknown emotion 'happy'"),
        (["-e", "joy+neutral"], "neutral cannot be blended"),
        (["-e", "joy+joy"], "joy appears twice"),
        (["-e", "joy=0+sadness=1"], "weight '0' for joy"),
        (["-e", "joy=-1+sadness"], "weight '-1' for joy"),
        (["-e", "joy+sadness=abc"], "weight 'abc' for sadness"),
        (["-e", "joy+"], "empty part in the blend"),
        (["-e", "joy+anger"], "poetstudio train --emotion anger"),
        (["-e", "joy", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["-e", "joy", "--form", "ode"], "unknown form 'ode'"),
        (["-e", "joy", "--rhyme", "AB1B"], "use letters, - or x, and spaces"),
        (["-e", "joy", "--syllables", "31"], "each count is 1 to 30"),
        (["-e", "joy", "--meter", "spondaic"], "unknown meter 'spondaic'"),
        (["-e", "joy", "--rhyme", "ABAB", "--syllables", "5,7,5"], "do not fit the scheme"),
        (["-e", "joy", "--form", "sonnet", "--max-lines", "8"], "conflicts with the sonnet"),
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
    shutil.rmtree(home.models / "neutral")
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


def test_help_shows_the_strength_default_and_the_blend_syntax(runner: CliRunner) -> None:
    result = runner.invoke(app, ["write", "--help"])
    assert result.exit_code == 0
    # Rich wraps the help into a boxed table: compare it with the borders and breaks removed.
    flat = re.sub(r"[\s│]+", " ", result.stdout)
    assert "--strength" in flat and f"(default {SamplingParams().strength})" in flat
    assert "joy=0.7+sadness=0.3" in flat and "--precision" in flat


def test_strength_is_saved_with_the_poem(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "poems.jsonl"
    result = write(runner, "-e", "joy", "--strength", "2.5", "-o", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    (entry,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert entry["emotion"] == "joy" and entry["settings"]["strength"] == 2.5
    assert "strength_applied" not in entry["settings"]


def test_guidance_changes_the_poem_and_zero_turns_it_off(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_cli, "_stdout_is_tty", lambda: True)
    plain = write(runner, "-e", "joy", "-f", SEED, "--strength", "0", *QUICK)
    guided = write(runner, "-e", "joy", "-f", SEED, "--strength", "3", *QUICK)
    assert plain.exit_code == 0 and guided.exit_code == 0, plain.output + guided.output
    assert "guidance off" in plain.stderr and "strength 3.00" in guided.stderr
    assert plain.stdout != guided.stdout


def test_without_a_neutral_model_the_applied_strength_is_recorded(
    runner: CliRunner, home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    shutil.rmtree(home.models / "neutral")
    monkeypatch.setattr(write_cli, "_stdout_is_tty", lambda: True)
    out = tmp_path / "poems.jsonl"
    result = write(runner, "-e", "joy", "--strength", "1.5", "-o", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    assert "note: " in result.stderr and "neutral" in result.stderr
    assert "guidance off" in result.stderr
    (entry,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert entry["settings"]["strength"] == 1.5
    assert entry["settings"]["strength_applied"] == 0.0


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("joy+sadness", "joy=0.50+sadness=0.50"),
        ("joy=0.7+sadness=0.3", "joy=0.70+sadness=0.30"),
        (" Joy = 3 + sadness = 1 ", "joy=0.75+sadness=0.25"),
        # Shares too small for 2 decimals keep the decimals they need (the core parses it again).
        ("joy=1+sadness=300", "joy=0.00332+sadness=0.99668"),
    ],
)
def test_a_blend_is_written_and_saved_under_its_canonical_spec(
    runner: CliRunner,
    home: DataHome,
    tiny_base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    canonical: str,
) -> None:
    build_tiny_lora(tiny_base, home.models / "sadness", "sadness", seed=3)
    monkeypatch.setattr(write_cli, "_stdout_is_tty", lambda: True)
    out = tmp_path / "poems.md"
    result = write(runner, "-e", spec, "-f", SEED, "--strength", "1.25", "-o", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(SEED + "\n")
    assert canonical in result.stderr and "strength 1.25" in result.stderr
    text = out.read_text()
    assert f"- emotion: {canonical}\n" in text and "strength 1.25" in text
    from studio.core.poemfile import read_poems

    (poem,) = read_poems(out)
    assert poem.emotion == canonical and poem.settings["strength"] == 1.25
    assert poem.text.startswith(SEED)


def test_the_studio_command_passes_its_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[object, ...]] = []
    monkeypatch.setattr(write_cli, "open_studio", lambda *args: opened.append(args))
    result = CliRunner().invoke(app, ["--precision", "BF16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert opened == [("cpu", "bf16")]
    bad = CliRunner().invoke(app, ["--precision", "half"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: unknown precision 'half'")
    assert len(bad.stderr.strip().splitlines()) == 1 and opened == [("cpu", "bf16")]
