"""The studio's strength and blend controls, their settings, and the meter's reading of a blend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from studio.core.generation.settings import setting_named
from studio.core.settings import (
    StudioSettings,
    load_settings,
    save_settings,
    strength_label,
)
from studio.tui.widgets.blend_picker import BlendPicker, blend_spec, mix_text
from studio.tui.widgets.emotion_meter import meter_text, verdict
from studio.tui.widgets.stepper import Stepper


def write_settings(path: Path, **values: object) -> Path:
    path.write_text(json.dumps(values))
    return path


# ----- settings -------------------------------------------------------------------------------


def test_strength_and_blend_settings_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_settings(path, theme="kept by someone else")
    save_settings(
        path,
        StudioSettings(emotion="joy", sampling={"strength": 0.0}, blend_with="fear", blend_mix=0.3),
    )
    loaded = load_settings(path)
    assert (
        loaded.sampling["strength"] == 0.0
        and loaded.blend_with == "fear"
        and loaded.blend_mix == 0.3
    )
    assert json.loads(path.read_text())["theme"] == "kept by someone else"


@pytest.mark.parametrize("raw", [-0.25, 3.25, 99, "nan", "inf", "-inf", "abc", None, [1], {}])
def test_a_strength_out_of_range_or_not_a_number_falls_back_to_the_default(
    tmp_path: Path, raw: object
) -> None:
    path = write_settings(tmp_path / "settings.json", strength=raw, temperature=1.1)
    settings = load_settings(path)
    assert "strength" not in settings.sampling  # absent: the generation core's default
    assert settings.sampling["temperature"] == 1.1  # the other values are still read


@pytest.mark.parametrize("raw", [0, 0.25, "1.5", 3])
def test_a_strength_in_range_is_kept(tmp_path: Path, raw: object) -> None:
    path = write_settings(tmp_path / "settings.json", strength=raw)
    assert load_settings(path).sampling["strength"] == float(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("partner", ["neutral", "happy", "../joy", 3, None, ["joy"]])
def test_a_blend_partner_that_cannot_be_blended_is_dropped(tmp_path: Path, partner: object) -> None:
    path = write_settings(tmp_path / "settings.json", blend_with=partner, blend_mix=0.9)
    settings = load_settings(path)
    assert settings.blend_with is None and settings.blend_mix is None


def test_strength_labels_name_zero_as_no_guidance() -> None:
    assert strength_label(0.0) == "guidance off"
    assert strength_label(1.0) == "strength 1.00" and strength_label(2.75) == "strength 2.75"


# ----- the stepper ----------------------------------------------------------------------------


class StepperApp(App[None]):
    """A stepper alone on a screen, recording every Changed it posts."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.changes: list[float] = []

    def compose(self) -> ComposeResult:
        yield Stepper(self.value, minimum=0.0, maximum=3.0, step=0.25, id="stepper")

    def on_stepper_changed(self, event: Stepper.Changed) -> None:
        self.changes.append(event.value)


async def test_the_stepper_cannot_go_below_its_minimum_or_above_its_maximum() -> None:
    app = StepperApp(0.5)
    async with app.run_test(size=(30, 3)) as pilot:
        stepper = app.query_one(Stepper)
        stepper.focus()
        await pilot.press("left", "minus", "left", "left", "left")
        assert stepper.value == setting_named("strength").studio[0] == 0.0
        await pilot.press(*["right"] * 20)
        assert stepper.value == setting_named("strength").studio[1] == 3.0
        await pilot.press("home")
        assert stepper.value == 0.0
        await pilot.press("end", "plus", "equals_sign")
        assert stepper.value == 3.0
        await pilot.pause()
        # One Changed per value reached; presses at an end change nothing and post nothing.
        assert app.changes[:2] == [0.25, 0.0] and app.changes[-3:] == [3.0, 0.0, 3.0]


@pytest.mark.parametrize(
    ("given", "held"), [(7.0, 3.0), (-1.0, 0.0), (1.1, 1.0), (1.13, 1.25), (float("nan"), 0.0)]
)
async def test_values_set_from_code_are_clamped_and_snapped_to_the_grid(
    given: float, held: float
) -> None:
    app = StepperApp(given)
    async with app.run_test(size=(30, 3)):
        stepper = app.query_one(Stepper)
        assert stepper.value == held
        stepper.value = given + 0.5
        assert 0.0 <= stepper.value <= 3.0 and stepper.value * 4 == int(stepper.value * 4)


async def test_the_stepper_buttons_respond_to_clicks_and_show_the_value() -> None:
    app = StepperApp(1.0)
    async with app.run_test(size=(30, 3)) as pilot:
        stepper = app.query_one(Stepper)
        await pilot.click("#stepper", offset=(29, 0))  # the + at the right end
        assert stepper.value == 1.25
        await pilot.click("#stepper", offset=(0, 0))  # the −
        await pilot.click("#stepper", offset=(0, 0))
        assert stepper.value == 0.75
        await pilot.click("#stepper", offset=(12, 0))  # the gauge: focus only, no step
        assert stepper.value == 0.75 and stepper.has_focus
        shown = str(stepper.render())
        assert shown.startswith("− 0.75 ") and shown.endswith(" +") and "━" in shown


async def test_a_disabled_stepper_ignores_keys_and_clicks() -> None:
    app = StepperApp(1.0)
    async with app.run_test(size=(30, 3)) as pilot:
        stepper = app.query_one(Stepper)
        stepper.disabled = True
        await pilot.click("#stepper", offset=(29, 0))
        await pilot.press("right")
        assert stepper.value == 1.0 and not stepper.has_focus


# ----- blends ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "second", "mix", "spec"),
    [
        ("joy", None, 0.5, "joy"),
        ("joy", "sadness", 0.5, "joy=0.50+sadness=0.50"),
        ("joy", "sadness", 0.3, "joy=0.70+sadness=0.30"),
        ("trust", "fear", 0.1, "trust=0.90+fear=0.10"),
        ("neutral", "joy", 0.3, "neutral"),  # neutral is never blended
        ("joy", "joy", 0.3, "joy"),
    ],
)
def test_the_blend_spec_is_canonical(
    primary: str, second: str | None, mix: float, spec: str
) -> None:
    assert blend_spec(primary, second, mix) == spec


def test_the_mix_reads_as_percentages_of_primary_and_second() -> None:
    assert [mix_text(m) for m in (0.1, 0.3, 0.5)] == ["90/10", "70/30", "50/50"]


class BlendApp(App[None]):
    """A blend picker alone on a screen, recording every Changed it posts."""

    def __init__(self, primary: str, second: str | None, mix: float = 0.5) -> None:
        super().__init__()
        self.args = (primary, second, mix)
        self.changes: list[tuple[str | None, float]] = []

    def compose(self) -> ComposeResult:
        yield BlendPicker(*self.args, id="blend")

    def on_blend_picker_changed(self, event: BlendPicker.Changed) -> None:
        self.changes.append((event.second, event.mix))


def option_values(app: App[None]) -> list[str]:
    return [value for _, value in app.query_one("#blend-with")._options]


async def test_the_blend_list_offers_none_and_the_other_emotions_but_never_neutral() -> None:
    app = BlendApp("joy", "sadness", 0.3)
    async with app.run_test(size=(40, 8)) as pilot:
        picker = app.query_one(BlendPicker)
        assert option_values(app) == [
            "",
            "anger",
            "anticipation",
            "disgust",
            "fear",
            "sadness",
            "surprise",
            "trust",
        ]
        assert picker.spec == "joy=0.70+sadness=0.30"
        assert "joy 70% + sadness 30%" in str(app.query_one("#blend-hint").render())
        app.query_one("#blend-mix").focus()
        await pilot.press("right")
        await pilot.pause()
        assert picker.spec == "joy=0.60+sadness=0.40" and app.changes[-1] == ("sadness", 0.4)


async def test_the_blend_partner_is_picked_with_the_keyboard() -> None:
    app = BlendApp("joy", None)
    async with app.run_test(size=(40, 16)) as pilot:
        picker = app.query_one(BlendPicker)
        assert picker.spec == "joy" and app.query_one("#blend-mix").disabled
        app.query_one("#blend-with").focus()
        await pilot.press("enter", *["down"] * 5, "enter")  # none, anger, ..., fear, sadness
        await pilot.pause()
        assert picker.second == "sadness" and picker.spec == "joy=0.50+sadness=0.50"
        assert app.changes == [("sadness", 0.5)] and not app.query_one("#blend-mix").disabled


async def test_picking_the_partner_as_the_emotion_drops_the_blend() -> None:
    app = BlendApp("joy", "sadness")
    async with app.run_test(size=(40, 8)) as pilot:
        picker = app.query_one(BlendPicker)
        picker.set_primary("sadness")
        await pilot.pause()
        assert picker.second is None and picker.spec == "sadness"
        assert "sadness" not in option_values(app) and "joy" in option_values(app)
        assert app.changes == [(None, 0.5)]
        picker.set_primary("trust")  # nothing to drop: no message
        await pilot.pause()
        assert app.changes == [(None, 0.5)]


async def test_a_neutral_primary_disables_the_blend_but_keeps_the_choice() -> None:
    app = BlendApp("neutral", "fear", 0.2)
    async with app.run_test(size=(40, 8)) as pilot:
        picker = app.query_one(BlendPicker)
        assert picker.spec == "neutral" and picker.second == "fear"
        assert app.query_one("#blend-with").disabled and app.query_one("#blend-mix").disabled
        assert "never blended" in str(app.query_one("#blend-hint").render())
        picker.set_primary("joy")
        await pilot.pause()
        assert picker.spec == "joy=0.80+fear=0.20"
        assert not app.query_one("#blend-with").disabled


# ----- the meter ------------------------------------------------------------------------------


def marked(target: object) -> list[str]:
    lines = meter_text({"joy": 3, "sadness": 2, "fear": 1}, target).plain.splitlines()  # type: ignore[arg-type]
    return [line.split()[1] for line in lines if line.startswith("▶")]


def test_the_meter_highlights_every_emotion_of_a_blend() -> None:
    assert marked("joy") == ["joy"]
    assert marked("joy=0.70+sadness=0.30") == ["joy", "sadness"]
    assert marked(("fear", "trust")) == ["fear", "trust"]
    assert marked("neutral") == []


@pytest.mark.parametrize(
    ("counts", "targets", "line"),
    [
        ({}, ("joy", "sadness"), "no emotion words yet"),
        ({"joy": 3, "sadness": 2, "fear": 1}, ("joy", "sadness"), "joy and sadness lead"),
        ({"joy": 3, "sadness": 1, "fear": 1}, ("joy", "sadness"), "joy ahead; sadness not yet"),
        ({"joy": 2, "anger": 2}, ("joy", "sadness"), "joy ties for the lead"),
        (
            {"joy": 2, "sadness": 2, "anger": 2},
            ("joy", "sadness"),
            "joy and sadness tie for the lead",
        ),
        ({"anger": 3, "joy": 1}, ("joy", "sadness"), "anger leads, not joy or sadness"),
        ({"joy": 3, "fear": 1}, ("joy",), "joy leads"),
        ({"joy": 1, "fear": 3}, ("joy",), "fear leads, not joy"),
        ({"fear": 1}, ("neutral",), "neutral: fewer emotion words is closer"),
    ],
)
def test_the_verdict_speaks_of_the_blend(
    counts: dict[str, int], targets: tuple[str, ...], line: str
) -> None:
    assert verdict(counts, targets) == line
