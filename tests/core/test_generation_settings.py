"""The one declaration of every generation setting: validation, ranges, records, settings file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio.core.generation import settings
from studio.core.generation.settings import SEED_LIMIT, SamplingParams, setting, setting_named
from studio.core.settings import StudioSettings, load_settings, save_settings
from trainer.common.errors import PoetstudioError


@dataclass
class WithVerve(SamplingParams):
    """The settings plus one more, declared only here."""

    verve: float = setting(
        0.5, "How lively.", cli=(0.0, 2.0), studio=(0.0, 1.0), step=0.1, control="input"
    )


def test_every_default_is_valid_and_every_setting_refuses_a_value_past_its_range() -> None:
    SamplingParams().validate()
    for spec in settings.declared():
        if spec.kind is str:
            continue  # text settings have a grammar, not a range (below)
        too_high = spec.cli[1] + (1 if spec.kind is int else 0.5)
        with pytest.raises(PoetstudioError, match=f"^{spec.label} must be "):
            SamplingParams(**{spec.name: spec.kind(too_high)}).validate()


def test_the_cli_and_the_studio_ranges_are_declared_side_by_side() -> None:
    temperature, strength = setting_named("temperature"), setting_named("strength")
    assert temperature.cli == (1e-3, 10.0) and temperature.studio == (0.05, 3.0)
    assert strength.cli == (0.0, 5.0) and strength.studio == (0.0, 3.0)
    assert temperature.parse("5", studio=False) == 5.0 and temperature.parse("5") is None
    assert temperature.parse("0", studio=False) == 0.0, "greedy on the command line"
    assert temperature.parse("0") is None, "not a studio temperature"
    assert setting_named("seed").cli == (0, SEED_LIMIT - 1)


def test_text_settings_are_checked_by_their_grammar_and_together() -> None:
    SamplingParams(form="sonnet", rhyme="ABAB CDCD EFEF GG", meter="iambic").validate()
    for bad, message in (
        ({"form": "ode"}, "unknown form 'ode'"),
        ({"rhyme": "AB1B"}, "use letters, - or x, and spaces"),
        ({"syllables": "0"}, "each count is 1 to 30"),
        ({"meter": "spondaic"}, "unknown meter"),
        ({"rhyme": "ABAB", "syllables": "5,7,5"}, "do not fit the scheme's 4 lines"),
    ):
        with pytest.raises(PoetstudioError, match=message):
            SamplingParams(**bad).validate()  # type: ignore[arg-type]


def test_a_poems_record_keeps_the_settings_declared_saved() -> None:
    texts_unset = {s.name for s in settings.declared() if s.kind is str and s.default is None}
    expected = {s.name for s in settings.declared() if s.saved} - texts_unset
    assert set(SamplingParams().to_dict()) == expected
    assert SamplingParams(form="haiku", rhyme="xxx").to_dict()["rhyme"] == "xxx"


def test_the_settings_file_remembers_each_controlled_setting_in_its_studio_range(
    tmp_path: Path,
) -> None:
    path = tmp_path / "settings.json"
    assert [s.name for s in settings.controlled()] == [
        *("temperature", "top_p", "max_lines", "strength", "form", "rhyme", "syllables")
    ]
    controlled = [s for s in settings.controlled() if s.kind is not str]
    save_settings(path, StudioSettings(sampling={s.name: s.studio[1] for s in controlled}))
    stored = json.loads(path.read_text())
    assert {s.name: stored[s.name] for s in controlled} == {s.name: s.studio[1] for s in controlled}
    assert load_settings(path).sampling == {s.name: s.studio[1] for s in controlled}
    path.write_text(json.dumps({"temperature": 5.0, "top_k": 7, "max_lines": 3}))
    assert load_settings(path).sampling == {"max_lines": 3}, (
        "out of the studio's range, or no control"
    )


def test_the_form_controls_are_remembered_as_text_checked_by_their_grammar(
    tmp_path: Path,
) -> None:
    form = setting_named("form")
    assert (form.control, form.choices) == ("select", tuple(settings.PRESETS))
    assert [setting_named(n).control for n in ("rhyme", "syllables")] == ["text", "text"]
    path = tmp_path / "settings.json"
    chosen = {"form": "ballad", "rhyme": "ABCB DEFE", "syllables": "8,6"}
    save_settings(path, StudioSettings(sampling=chosen))
    assert load_settings(path).sampling == chosen
    path.write_text(json.dumps({"form": "ode", "rhyme": "AB1B", "syllables": "8,6"}))
    assert load_settings(path).sampling == {"syllables": "8,6"}, "each text by its grammar"
    path.write_text(json.dumps({"form": "haiku", "rhyme": "ABAB", "syllables": "5,7,5"}))
    assert load_settings(path).sampling == {"form": "haiku"}, "a scheme and counts that clash"


def test_a_setting_declared_once_reaches_validation_records_and_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "SamplingParams", WithVerve)
    params = settings.make_params({"verve": 1.5})
    assert isinstance(params, WithVerve) and params.to_dict()["verve"] == 1.5
    with pytest.raises(PoetstudioError, match="verve must be a number from 0 to 2"):
        settings.make_params({"verve": 3.0})
    path = tmp_path / "settings.json"
    save_settings(path, StudioSettings(sampling={"verve": 0.75}))
    assert json.loads(path.read_text())["verve"] == 0.75
    assert load_settings(path).sampling == {"verve": 0.75}


def test_generation_seeds_have_one_limit_small_enough_to_type() -> None:
    from studio.core.generation.poet import fresh_seed

    assert SEED_LIMIT == 2**31
    assert all(0 <= fresh_seed() < SEED_LIMIT for _ in range(200))
    with pytest.raises(PoetstudioError, match=f"seed must be a whole number from 0 to {2**31 - 1}"):
        SamplingParams(seed=SEED_LIMIT).validate()
