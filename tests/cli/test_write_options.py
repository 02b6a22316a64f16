"""`write`'s sampling options come from the settings' declarations, and reach the poem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from studio.cli import write
from studio.cli.common import OneLineErrors
from studio.core.generation import poet as poet_module
from studio.core.generation import settings
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats
from tests.core.test_generation_settings import WithVerve


class RecordingPoet:
    """Stands in for the Poet: keeps the settings each poem was asked with."""

    asked: list[SamplingParams] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.last_stats: GenerationStats | None = None

    def model_info(self, emotion: str) -> None:
        return None

    def load(self, emotion: str, on_progress: Any = None) -> None:
        return None

    def stream_poem(self, emotion: str, first_line: str, params: SamplingParams) -> Iterator[str]:
        RecordingPoet.asked.append(params)
        self.last_stats = GenerationStats(seed=params.seed or 0, strength=params.strength)
        yield "a line"


def invoke(*args: str) -> Any:
    """Run `write` from a command app built now, from the declarations as they are now."""
    app = typer.Typer(cls=OneLineErrors)

    @app.callback()
    def root() -> None:
        """The root, so that `write` is a subcommand."""

    write.register(app)
    return CliRunner().invoke(app, ["write", *args], env={"COLUMNS": "200"})


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poet_module, "Poet", RecordingPoet)
    RecordingPoet.asked = []


def test_every_declared_setting_is_a_write_option_with_its_range_and_default() -> None:
    result = invoke("--help")
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.replace("│", " ").split())
    for spec in settings.declared():
        assert spec.flag in flat, spec.name
    assert "a number from 0.001 to 10" in flat and "(default 0.8)" in flat


def test_each_option_given_reaches_the_poems_settings() -> None:
    args = []
    expected = {}
    texts = {"form": "quatrain", "rhyme": "ABAB", "syllables": "8", "meter": "iambic"}
    texts["backend"] = "torch"
    for spec in settings.declared():
        value = texts.get(spec.name, 5 if spec.name == "seed" else spec.kind(spec.cli[1]))
        args += [spec.flag, str(value)]
        expected[spec.name] = value
    result = invoke("-e", "joy", "--format", "jsonl", *args)
    assert result.exit_code == 0, result.output
    (params,) = RecordingPoet.asked
    assert {name: getattr(params, name) for name in expected} == expected
    record = json.loads(result.stdout)
    assert {k: v for k, v in record["settings"].items() if k in expected} == expected


def test_a_setting_declared_once_becomes_a_write_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "SamplingParams", WithVerve)
    assert "--verve" in invoke("--help").output
    result = invoke("-e", "joy", "--verve", "1.5", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert getattr(RecordingPoet.asked[0], "verve") == 1.5  # noqa: B009 - not on SamplingParams
    assert json.loads(result.stdout)["settings"]["verve"] == 1.5
    bad = invoke("-e", "joy", "--verve", "3")
    assert bad.exit_code == 1 and "verve must be a number from 0 to 2" in bad.output
