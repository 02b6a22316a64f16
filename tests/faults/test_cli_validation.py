"""Options that used to pass validation and then fail inside the job or the sampler: each is now
refused up front, on one line, before a job folder exists or a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import models
from studio.cli import app
from studio.core.generation.settings import SEED_LIMIT, SamplingParams
from tests.helpers.models import build_tiny_lora
from tests.helpers.training import write_dataset
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.training.config import TrainConfig, check_block_size, model_context, parse_train_args

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def job_folders(home: DataHome) -> list[Path]:
    return [p for p in home.jobs.iterdir() if not p.name.startswith(".")]


def assert_one_line_error(code: int, output: str, message: str) -> None:
    assert code != 0
    assert output.startswith("error: ") and message in output, output
    assert output.count("\n") == 1, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "nan"], "--lr must be a number from 1e-07 to 1"),
        (["--lr", "inf"], "--lr must be a number"),
        (["--lr", "6e-26"], "--lr must be a number from 1e-07"),
        (["--lr", "5"], "--lr must be a number"),
        (["--epochs", "nan"], "--epochs must be a number above 0"),
        (["--epochs", "1e23"], "--epochs must be a number above 0 and at most 1000"),
        (["--max-steps", str(10**23)], "--max-steps must be from 1 to 1,000,000"),
        (["--weight-decay", "-5"], "--weight-decay must be a number from 0 to 1"),
        (["--weight-decay", "nan"], "--weight-decay must be a number from 0 to 1"),
        (["--warmup", "nan"], "--warmup is a share of the steps"),
        (["--seed", str(2**64)], "--seed must be a whole number from 0 to 4294967295"),
        (["--seed", "-1"], "--seed must be a whole number"),
        (["--batch-size", str(10**12)], "--batch-size must be at most 1,000,000"),
    ],
)
def test_train_refuses_meaningless_options_before_any_job(
    home: DataHome, tiny_base: Path, args: list[str], message: str
) -> None:
    write_dataset(home)
    code, output = run("train", "--emotion", "neutral", "--base", str(tiny_base), *args)
    assert_one_line_error(code, output, message)
    assert not job_folders(home)


def test_a_block_size_above_the_base_context_is_refused_before_any_job(
    home: DataHome, tiny_base: Path
) -> None:
    write_dataset(home)
    code, output = run(
        "train", "--emotion", "neutral", "--base", str(tiny_base), "--block-size", "512"
    )
    # The tiny base's config.json gives n_positions 256.
    assert_one_line_error(code, output, "--block-size 512 is longer than the context of base")
    assert "(256 tokens); use at most 256" in output
    assert not job_folders(home)


def test_an_emotion_is_checked_against_the_base_of_its_neutral_parent(
    home: DataHome, tiny_base: Path
) -> None:
    build_tiny_lora(tiny_base, home.models / "neutral", "neutral")
    with pytest.raises(PoetstudioError, match="at most 256"):
        check_block_size(TrainConfig(emotion="joy", block_size=300), home)
    check_block_size(TrainConfig(emotion="joy", block_size=256), home)


def test_the_context_is_read_from_config_json_alone(tmp_path: Path, tiny_base: Path) -> None:
    assert model_context(tiny_base / "config.json") == 256
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 8192}))
    assert model_context(tmp_path / "config.json") == 8192
    (tmp_path / "config.json").write_text("[1, 2]")
    assert model_context(tmp_path / "config.json") is None
    assert model_context(tmp_path / "missing.json") is None


def test_a_preset_that_is_not_converted_yet_uses_its_published_context(home: DataHome) -> None:
    with pytest.raises(PoetstudioError, match="'gpt2' \\(1024 tokens\\)"):
        check_block_size(TrainConfig(emotion="neutral", base="gpt2", block_size=2048), home)
    check_block_size(TrainConfig(emotion="neutral", block_size=8192), home)


def test_the_job_process_refuses_the_same_options_from_its_argument_list() -> None:
    # A job started by the studio or by an older CLI passes through the same parser.
    for args in (["--lr", "nan"], ["--epochs", "nan"], ["--weight-decay", "-5"]):
        with pytest.raises(PoetstudioError):
            parse_train_args(["--emotion", "trust", *args])
    assert parse_train_args(["--emotion", "trust", "--lr", "1e-4"]).config.lr == 1e-4


def test_all_detach_with_a_missing_dataset_fails_before_detaching(
    home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.control

    def no_spawn(*_args: object) -> int:
        raise AssertionError("the chain was started")

    monkeypatch.setattr(trainer.jobs.control, "start_chain", no_spawn)
    code, output = run("train", "--all", "--detach", "--dataset", "nope")
    assert_one_line_error(code, output, "dataset 'nope' is not built")
    assert not (home.jobs / "chain-log.txt").exists()


def test_all_detach_with_bad_options_fails_before_detaching(
    home: DataHome, tiny_base: Path
) -> None:
    write_dataset(home)
    code, output = run(
        "train", "--all", "--detach", "--base", str(tiny_base), "--block-size", "4096"
    )
    assert_one_line_error(code, output, "--block-size 4096 is longer than the context")
    assert not (home.jobs / "chain-log.txt").exists()


def test_all_detach_refuses_while_an_emotion_is_training(home: DataHome, tiny_base: Path) -> None:
    from trainer.jobs.locks import EmotionLock

    write_dataset(home)
    lock = EmotionLock(home, "fear")
    lock.acquire("20250101-000000-fear-abcd")
    try:
        code, output = run("train", "--all", "--detach", "--base", str(tiny_base))
    finally:
        lock.release()
    assert_one_line_error(code, output, "a fear model is already training")
    assert "job 20250101-000000-fear-abcd" in output
    assert not (home.jobs / "chain-log.txt").exists()


@pytest.fixture
def writer(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home with a joy model, and nothing bundled."""
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-bundled")
    build_tiny_lora(tiny_base, home.models / "joy", "joy")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "inf"], "temperature must be 0 (greedy) or a number from 0.001 to 10"),
        (["--temperature", "1e-45"], "temperature must be 0 (greedy) or a number"),
        (["--temperature", "nan"], "temperature must be 0 (greedy) or a number"),
        (["--top-p", "nan"], "top-p must be in (0, 1]"),
        (["--strength", "nan"], "strength must be a number from 0 to 5"),
        (["--seed", str(10**23)], f"seed must be a whole number from 0 to {SEED_LIMIT - 1}"),
        (["--seed", "-3"], "seed must be a whole number"),
        (["--seed", str(2**64 - 1), "-n", "2"], "seed must be a whole number"),
        (["--seed", str(SEED_LIMIT - 1), "-n", "2"], f"would use seeds up to {SEED_LIMIT}"),
    ],
)
def test_write_refuses_bad_sampling_values_before_loading(
    writer: None, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    from studio.core.generation.poet import Poet

    def no_load(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Poet, "load", no_load)
    code, output = run("write", "-e", "joy", *args)
    assert_one_line_error(code, output, message)


def test_the_last_seed_of_a_run_may_reach_the_limit(writer: None) -> None:
    code, output = run(
        "write", "-e", "joy", "--seed", str(SEED_LIMIT - 2), "-n", "2", "--max-tokens", "3"
    )
    assert code == 0, output


def test_sampling_params_refuse_non_finite_values() -> None:
    for bad in (
        {"temperature": float("inf")},
        {"temperature": 1e-45},
        {"temperature": 11.0},
        {"repetition_penalty": float("inf")},
        {"repetition_penalty": float("nan")},
        {"seed": SEED_LIMIT},
    ):
        with pytest.raises(PoetstudioError):
            SamplingParams(**bad).validate()  # type: ignore[arg-type]
    assert SamplingParams(temperature=0.0, seed=SEED_LIMIT - 1).validate().seed == SEED_LIMIT - 1
    assert SamplingParams(temperature=1e-3).validate().temperature == 1e-3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["write"], "Missing option '--emotion' / '-e'."),
        (["write", "-e", "joy", "--bogus"], "No such option: --bogus"),
        (["write", "-e", "joy", "-n", "x"], "Invalid value for '--count' / '-n'"),
        (["train", "--max-steps", "1e23"], "Invalid value for '--max-steps'"),
        (["jobs", "stop"], "Missing argument"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
        (["eval", "3"], "unexpected argument '3'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(
    home: DataHome, args: list[str], message: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and message in result.output, result.output
    assert result.output.count("\n") == 1, result.output
    assert "╭" not in result.output and "--help" in result.output


def test_help_still_works(home: DataHome) -> None:
    result = runner.invoke(app, ["write", "--help"])
    assert result.exit_code == 0
    assert "--emotion" in result.output and "error" not in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "write" in result.output


@pytest.mark.subprocess
def test_the_console_script_gives_one_line_usage_errors(home: DataHome) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "studio", "write", "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
