"""The studio's sampling controls come from the settings' declarations, and feed the poem and
the settings file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from studio.core.generation import settings
from studio.tui.widgets.stepper import Stepper
from tests.core.test_generation_settings import WithVerve
from trainer.common.home import DataHome


def make_app(home: DataHome, tmp_path: Path):
    from studio.tui.app import PoetStudioApp

    bundled = tmp_path / "no-bundled-models"
    bundled.mkdir(exist_ok=True)
    return PoetStudioApp(home, bundled_dir=bundled, seed=7)


async def test_each_controlled_setting_gets_its_control_in_its_studio_range(
    home: DataHome, tmp_path: Path
) -> None:
    app = make_app(home, tmp_path)
    async with app.run_test(size=(140, 45)) as pilot:
        kinds = {"stepper": Stepper, "select": Select, "input": Input, "text": Input}
        for spec in settings.controlled():
            control = app.query_one(f"#control-{spec.name}")
            assert isinstance(control, kinds[spec.control or ""])
        stepper = app.query_one("#control-strength", Stepper)
        assert (stepper.minimum, stepper.maximum) == settings.setting_named("strength").studio
        temperature = app.query_one("#control-temperature", Input)
        temperature.value = "5"  # fine for `write`, past the studio's range
        await pilot.pause()
        assert temperature.has_class("invalid")
        temperature.value = "1.25"
        await pilot.pause()
        assert app._params(3).temperature == 1.25
        assert json.loads(home.settings_file.read_text())["temperature"] == 1.25


async def test_remembered_settings_fill_the_controls(home: DataHome, tmp_path: Path) -> None:
    home.settings_file.parent.mkdir(parents=True, exist_ok=True)
    home.settings_file.write_text(json.dumps({"top_p": 0.5, "max_lines": 9, "strength": 0}))
    app = make_app(home, tmp_path)
    async with app.run_test(size=(140, 45)):
        params = app._params(3)
        assert (params.top_p, params.max_lines, params.strength) == (0.5, 9, 0.0)
        assert app.query_one("#control-max_lines", Input).value == "9"


async def test_a_setting_declared_once_gets_a_studio_control(
    home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "SamplingParams", WithVerve)
    app = make_app(home, tmp_path)
    async with app.run_test(size=(140, 50)) as pilot:
        control = app.query_one("#control-verve", Input)
        assert control.value == "0.5"
        control.value = "0.75"
        await pilot.pause()
        assert getattr(app._params(3), "verve") == 0.75  # noqa: B009 - not on SamplingParams
        assert json.loads(home.settings_file.read_text())["verve"] == 0.75


async def test_the_form_control_offers_the_presets_and_refuses_text_that_does_not_fit(
    home: DataHome, tmp_path: Path
) -> None:
    from trainer.common.form import PRESETS

    app = make_app(home, tmp_path)
    async with app.run_test(size=(140, 45)) as pilot:
        form = app.query_one("#control-form", Select)
        assert [value for _, value in form._options] == list(PRESETS)
        form.value = "haiku"
        await pilot.pause()
        scheme = app.query_one("#control-rhyme", Input)
        scheme.value = "ABAB"  # four lines against haiku's three syllable counts
        await pilot.pause()
        assert scheme.has_class("invalid")
        status = str(app.query_one("#status").render())
        assert "not applied: 3 syllable counts do not fit the scheme's 4 lines" in status
        params = app._params(3)
        assert (params.form, params.rhyme) == ("haiku", None)
        scheme.value = "ABA"
        await pilot.pause()
        assert not scheme.has_class("invalid")
        assert app._params(3).rhyme == "ABA"
        scheme.value = ""  # empty: the form's own scheme again
        await pilot.pause()
        assert app._params(3).rhyme is None
        stored = json.loads(home.settings_file.read_text())
        assert stored["form"] == "haiku" and "rhyme" not in stored
