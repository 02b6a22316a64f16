"""The `poetstudio train` options come from TrainConfig's fields: one list, parsed the same way
by the CLI and the job process, and checked against the job on `--resume`."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from trainer.training.config import (
    ResumeConflict,
    TrainConfig,
    config_to_args,
    option,
    parse_train_args,
    train_options,
)


def test_every_config_field_is_an_option_with_help_text() -> None:
    options = {opt.name: opt for opt in train_options()}
    assert list(options) == [spec.name for spec in fields(TrainConfig)]
    for opt in options.values():
        assert opt.help, f"{opt.flag} has no help: give its field option(default, help)"
    assert options["block_size"].help.endswith("(default: 128)")
    assert options["lr"].help.endswith("(default: 0.0003 lora, 5e-05 full)")
    assert options["from_base"].flag == "--from-base" and options["from_base"].kind is bool


def test_a_field_made_with_option_is_an_option_with_no_other_edit() -> None:
    @dataclass
    class Wider(TrainConfig):
        compile: bool = option(True, "Compile the model.")
        nproc: int = option(1, "Processes.", resume_safe=True)

    options = {opt.name: opt for opt in train_options(Wider)}
    assert options["compile"].flag == "--no-compile"  # a switch that is on by default
    assert options["nproc"].help == "Processes. (default: 1)" and options["nproc"].resume_safe


def test_the_newly_exposed_options_round_trip_through_the_job_arguments() -> None:
    config = TrainConfig(
        emotion="joy", clip=0.5, lora_alpha=8, lora_dropout=0.1, eval_blocks=4, from_base=True
    )
    args = config_to_args(config)
    assert args[:2] == ["--emotion", "joy"] and "--from-base" in args
    request = parse_train_args(args)
    assert request.config == config
    assert request.given == {"emotion", "clip", "lora_alpha", "lora_dropout", "eval_blocks"} | {
        "from_base"
    }


def test_resume_accepts_the_job_s_own_values_and_a_new_device() -> None:
    job = TrainConfig(emotion="trust", max_steps=200, lr=1e-3)
    request = parse_train_args(
        ["--emotion", "trust", "--max-steps", "200", "--device", "cpu", "--resume"]
    )
    request.check_resume(job)
    assert "device" not in request.resume_overrides()  # the job file's `device`: this run only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-steps", "300"], "--max-steps 300 differs from its 200"),
        (["--lr", "0.01"], "--lr 0.01 differs from its 0.001"),
        (["--from-base"], "--from-base on differs from its off"),
    ],
)
def test_resume_refuses_an_option_that_differs_from_the_job_s(
    args: list[str], message: str
) -> None:
    job = TrainConfig(emotion="trust", max_steps=200, lr=1e-3)
    request = parse_train_args(["--emotion", "trust", "--resume", *args])
    with pytest.raises(ResumeConflict, match=message) as caught:
        request.check_resume(job)
    assert "(only --device" in str(caught.value) and "may change on resume)" in str(caught.value)
    assert "\n" not in str(caught.value)
