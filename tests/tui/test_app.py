"""Pilot tests of the Textual studio, driving the real generation core with tiny LoRA models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.models import build_tiny_lora
from tests.helpers.training import start_child
from trainer.common.home import DataHome
from trainer.training.events import emit

TRAINED = ("neutral", "joy")
# Built too, and installed by the blend tests: a second emotion to mix with joy.
BUILT = (*TRAINED, "sadness")
SIZE = (120, 36)


@pytest.fixture(scope="session")
def tiny_models(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA models for BUILT emotions, built once and copied into each test's home."""
    root = tmp_path_factory.mktemp("tiny-models")
    for index, emotion in enumerate(BUILT):
        build_tiny_lora(tiny_base, root / emotion, emotion, seed=index + 1)
    return root


def install_models(home: DataHome, models: Path, emotions: tuple[str, ...] = TRAINED) -> None:
    """Copy the prebuilt tiny models of `emotions` into the home's models folder."""
    for emotion in emotions:
        shutil.copytree(models / emotion, home.models / emotion)


@pytest.fixture
def studio_home(home: DataHome, tiny_models: Path) -> DataHome:
    """A data home holding tiny neutral and joy models."""
    install_models(home, tiny_models)
    return home


def make_app(home: DataHome, tmp_path: Path, seed: int | None = 7, **options):
    """The studio on `home`, with no bundled models (so only the test's models count)."""
    from studio.tui.app import PoetStudioApp

    bundled = tmp_path / "no-bundled-models"
    bundled.mkdir(exist_ok=True)
    return PoetStudioApp(home, bundled_dir=bundled, seed=seed, **options)


async def settle(app, pilot) -> None:
    """Wait until every worker is done and every posted message is handled."""
    from textual.worker import WorkerCancelled

    for _ in range(3):
        # A replaced (exclusive) worker reports itself cancelled; its thread still finishes.
        while True:
            try:
                await app.workers.wait_for_complete()
                break
            except WorkerCancelled:
                await pilot.pause(0.01)
        await pilot.pause()


def rendered(app, selector: str) -> str:
    """The plain text a Static shows (what the user reads, markup or not)."""
    return str(app.query_one(selector).render())


def poll_jobs(app) -> None:
    """Make the training panel look at the jobs now rather than at its next tick."""
    app.query_one("#training").poll_jobs()


def messages(app) -> list[str]:
    return [n.message for n in app._notifications]


def slow_stream(app, delay: float = 0.05) -> None:
    """Make the app's core pause between chunks, so a test can act mid-stream."""
    poet = app.poet
    original = poet.stream_poem

    def stream(*args, **kwargs) -> Iterator[str]:
        for chunk in original(*args, **kwargs):
            time.sleep(delay)
            yield chunk

    poet.stream_poem = stream


async def write_poem(app, pilot, first_line: str = "") -> None:
    """Type `first_line` into the seed box, press Enter, and wait for what that starts to end."""
    await pilot.press(*first_line, "enter")
    await settle(app, pilot)


async def wait_for_text(app, pilot, timeout: float = 10.0) -> None:
    from studio.tui.widgets.poem_panel import PoemPanel

    deadline = time.monotonic() + timeout
    while len(app.query_one(PoemPanel).text) < 12 and time.monotonic() < deadline:
        await pilot.pause(0.02)


async def test_generate_streams_a_poem_with_stats_and_meter(studio_home, tmp_path):
    from studio.tui.widgets.poem_panel import PoemPanel
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "The lamps are out")
        text = app.query_one(PoemPanel).text
        assert text.startswith("The lamps are out\n")
        assert len(text) > len("The lamps are out\n")
        poem = app.history.current
        assert poem.finished and poem.seed == 7 and poem.emotion == "neutral"
        assert poem.title and poem.stop_reason
        status = app.query_one(StatusBar)
        assert status.field("ttft").startswith("TTFT ")
        assert "tokens" in status.field("speed")
        assert status.field("device") == "cpu · torch"  # where, and which backend decodes
        meter = rendered(app, "#meter")
        assert "anger" in meter and "trust" in meter


async def test_markup_in_the_first_line_is_shown_literally(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "[bold red]x[/]")
        assert app.history.current.text.startswith("[bold red]x[/]\n")
        assert "[bold red]x[/]" in rendered(app, "#poem-body")


async def test_markup_and_control_characters_from_the_model_stay_literal():
    from textual.app import App

    from studio.core.history import SessionPoem
    from studio.tui.widgets.poem_panel import PoemPanel

    class PanelApp(App[None]):
        def compose(self):
            yield PoemPanel(id="poem")

    app = PanelApp()
    async with app.run_test() as pilot:
        panel = app.query_one(PoemPanel)
        panel.show(SessionPoem("joy", "", 1, {}, finished=True, title="[b]T[/b]"), 1, 1)
        panel.append("[bold red]x[/] and [link=http://x]y[/link]\n")
        panel.append("bell\x07 esc\x1b[31m")
        await pilot.pause()
        body = rendered(app, "#poem-body")
        assert "[bold red]x[/] and [link=http://x]y[/link]" in body
        assert "\x1b" not in body and "\x07" not in body
        assert "\u241b[31m" in body and "\u2407" in body
        assert "[b]T[/b]" in rendered(app, "#poem-title")


async def test_control_characters_in_the_seed_never_reach_the_poem(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#first-line").value = "grey\x1b[31m sea\x07\tsighs"
        await write_poem(app, pilot)
        text = app.history.current.text
        assert text.splitlines()[0] == "grey[31m sea sighs"
        assert "\x1b" not in text and "\x07" not in text


async def test_empty_seed_writes_from_nothing(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot)
        poem = app.history.current
        assert poem.finished and poem.text.strip()


async def test_escape_stops_the_stream_and_keeps_the_poem(studio_home, tmp_path):
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        slow_stream(app)
        await pilot.press(*"O weep", "enter")
        await wait_for_text(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        poem = app.history.current
        assert poem.stop_reason == "cancelled"
        assert poem.text.startswith("O weep\n")
        assert app.query_one(StatusBar).field("state") == "stopped"
        assert not app.generating


async def test_regenerate_variation_and_history(studio_home, tmp_path):
    from studio.tui.widgets.poem_panel import PoemPanel

    # "Same seed, same poem" holds where the arithmetic is the same by construction: fp32, not
    # auto (bf16 on some CPUs), and one decode thread (the automatic count follows the load of
    # other processes, which may change between the two poems; a new count sums differently).
    app = make_app(studio_home, tmp_path, precision="fp32")
    app.poet.decode_threads = 1
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "Joy comes")
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert len(app.history) == 3
        first, again, variation = app.history._poems
        assert again.seed == first.seed and again.text == first.text  # same seed: same poem
        assert variation.seed == first.seed + 1 and variation.first_line == "Joy comes"
        panel = app.query_one(PoemPanel)
        assert panel.border_title.startswith("Poem 3/3")
        await pilot.press("pageup", "pageup")
        assert app.history.index == 0 and panel.border_title.startswith("Poem 1/3")
        assert panel.text == first.text
        await pilot.press("pagedown")
        assert panel.border_title.startswith("Poem 2/3")


async def test_switching_emotion_mid_stream_rewrites_in_the_new_emotion(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        slow_stream(app)
        await pilot.press(*"The night", "enter")
        await wait_for_text(app, pilot)
        app.query_one("#picker").pick("joy")
        await settle(app, pilot)
        first, second = app.history._poems
        assert first.emotion == "neutral" and first.stop_reason == "cancelled"
        assert second.emotion == "joy" and second.finished and second.stop_reason != "cancelled"
        assert second.first_line == "The night" and second.seed == first.seed
        assert json.loads(studio_home.settings_file.read_text())["emotion"] == "joy"


async def test_ctrl_s_saves_with_a_toast_and_the_saved_view_shows_it(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "Trust in the heart")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        path = studio_home.poems_file
        saved = path.read_text(encoding="utf-8")
        assert f"## {app.history.current.title}" in saved
        assert "> Trust in the heart" in saved and "seed 7" in saved
        assert f"Saved to {path}" in messages(app)
        await pilot.press("f3")
        await pilot.pause()
        assert "Trust in the heart" in rendered(app, "#saved-body")
        assert str(path) in rendered(app, "#saved-path")


async def test_a_save_failure_keeps_the_poem_and_shows_the_error(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    studio_home.poems_file.mkdir()  # a folder where the file should be: cannot be appended to
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "The lamps")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "could not save the poem" in errors[-1].message
        assert str(studio_home.poems_file) in errors[-1].message
        poem = app.history.current
        assert poem.text.startswith("The lamps") and not poem.saved_to
        assert "not saved" in rendered(app, "#poem-notice")
        studio_home.poems_file.rmdir()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert poem.saved_to == str(studio_home.poems_file)
        assert "The lamps" in studio_home.poems_file.read_text(encoding="utf-8")


async def test_no_models_at_all_explains_what_to_do_and_stays_usable(home, tmp_path):
    app = make_app(home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        notice = rendered(app, "#poem-notice")
        assert "no emotion models found" in notice and "poetstudio train" in notice
        await write_poem(app, pilot, "hello")
        assert any("no emotion models found" in m for m in messages(app))
        assert len(app.history) == 0
        await pilot.press(*" again")
        assert app.query_one("#first-line").value == "hello again"


async def test_untrained_and_corrupt_emotions_say_how_to_train(studio_home, tmp_path):
    (studio_home.models / "joy" / "poetstudio.json").write_text("{not json")
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        picker = app.query_one("#picker")
        assert not picker.is_trained("joy") and picker.is_trained("neutral")
        picker.pick("anger")
        await pilot.pause()
        assert "poetstudio train --emotion anger" in rendered(app, "#picker-hint")
        picker.pick("joy")
        await pilot.pause()
        hint = rendered(app, "#picker-hint")
        assert "corrupt manifest" in hint and "poetstudio train --emotion joy" in hint
        await write_poem(app, pilot)
        assert any("corrupt manifest" in m for m in messages(app))
        picker.pick("neutral")
        await write_poem(app, pilot)
        assert app.history.current.emotion == "neutral" and app.history.current.finished


async def test_an_overlong_first_line_is_truncated_with_a_notice(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#first-line").value = "the grey sea sighs beneath the stars " * 60
        await write_poem(app, pilot)
        poem = app.history.current
        assert poem.finished and "truncated" in poem.notice
        assert "truncated" in rendered(app, "#poem-notice")
        assert any("truncated" in m for m in messages(app))


async def test_sampling_controls_are_remembered_between_runs(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#control-temperature").value = "1.1"
        app.query_one("#control-max_lines").value = "abc"
        await pilot.pause()
        assert app.query_one("#control-max_lines").has_class("invalid")
        app.query_one("#control-max_lines").value = "6"
        await pilot.pause()
        await write_poem(app, pilot, "grey sea")
        assert app.history.current.sampling["temperature"] == 1.1
        assert len([line for line in app.history.current.text.splitlines() if line.strip()]) <= 6
    saved = json.loads(studio_home.settings_file.read_text())
    assert saved["temperature"] == 1.1 and saved["max_lines"] == 6
    again = make_app(studio_home, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.query_one("#control-temperature").value == "1.1"
        assert again.query_one("#control-max_lines").value == "6"


def fake_job(home: DataHome, emotion: str, job_id: str) -> tuple[Path, subprocess.Popen]:
    """A job folder whose process is alive (a sleeper whose command line names the folder)."""
    path = home.jobs / job_id
    path.mkdir(parents=True)
    sleeper = start_child("import time; time.sleep(60)", str(path))
    data = {"id": job_id, "emotion": emotion, "args": ["--emotion", emotion], "pid": sleeper.pid}
    (path / "job.json").write_text(json.dumps(data))
    return path, sleeper


async def test_training_panel_follows_a_job_and_its_model_appears_in_the_picker(
    studio_home, tmp_path, tiny_models
):
    from studio.tui.widgets.job_card import JobCard

    app = make_app(studio_home, tmp_path)
    path, sleeper = fake_job(studio_home, "fear", "20250101-120000-fear-ab12")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            events = path / "events.jsonl"
            emit(events, "start", emotion="fear", method="lora", device="cpu", total_steps=20)
            for step, loss in ((1, 5.0), (2, 4.6), (3, 4.4), (4, 4.1)):
                emit(events, "step", step=step, epoch=0.1, loss=loss, smooth_loss=loss)
            poll_jobs(app)
            await settle(app, pilot)
            await pilot.press("f2")
            await settle(app, pilot)
            card = app.query_one(JobCard)
            assert card.job_id == "20250101-120000-fear-ab12"
            summary = str(card.query_one(".job-summary").render())
            assert "running" in summary and "step 4/20" in summary and "ETA" in summary
            assert card.query_one("ProgressBar").progress == 4
            assert list(card.query_one("Sparkline").data) == [5.0, 4.6, 4.4, 4.1]
            assert not app.query_one("#picker").is_trained("fear")

            # Writing while the job runs works too.
            await pilot.press("f1", *"I fear", "enter")
            await settle(app, pilot)
            assert app.history.current.finished

            shutil.copytree(studio_home.models / "joy", studio_home.models / "fear")
            emit(events, "done", step=20, model_dir=str(studio_home.models / "fear"))
            poll_jobs(app)
            await settle(app, pilot)
            assert app.query_one("#picker").is_trained("fear")
            assert any("fear model is trained" in m for m in messages(app))
            assert "done" in str(app.query_one(JobCard).query_one(".job-summary").render())
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.subprocess
def test_the_app_module_imports_no_heavy_library():
    code = (
        "import sys, studio.tui.app\n"
        "studio.tui.app.PoetStudioApp()\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


async def test_command_palette_offers_the_studio_commands(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        found = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Save poem", "Regenerate", "Next variation", "Emotion: joy", "Train anger"):
            assert title in found
        assert "Blend: none" in found and "Blend with: neutral" not in found
        app.query_one("#picker").pick("joy")
        await settle(app, pilot)
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        assert "Blend with: joy" not in commands  # a blend with itself is joy alone
        commands["Blend with: trust"]()
        await settle(app, pilot)
        assert app.blend_spec == "joy=0.50+trust=0.50"
        commands["Blend: none"]()
        await settle(app, pilot)
        assert app.blend_spec == "joy"


# ----- guidance strength and blends -----------------------------------------------------------


async def test_the_strength_control_is_remembered_and_comes_back_after_a_restart(
    studio_home, tmp_path
):
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        control = app.query_one("#control-strength")
        assert control.value == 1.0  # SamplingParams' default
        assert app.query_one(StatusBar).field("guidance") == "strength 1.00"
        control.focus()
        await pilot.press("right", "right", "plus")
        await pilot.pause()
        assert control.value == 1.75
        assert app.query_one(StatusBar).field("guidance") == "strength 1.75"
    assert json.loads(studio_home.settings_file.read_text())["strength"] == 1.75
    again = make_app(studio_home, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.query_one("#control-strength").value == 1.75
        assert "1.75" in str(again.query_one("#control-strength").render())


async def test_the_strength_control_stops_at_0_and_3_and_0_is_remembered(studio_home, tmp_path):
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        control = app.query_one("#control-strength")
        control.focus()
        await pilot.press(*["right"] * 15)
        assert control.value == 3.0
        await pilot.press(*["left"] * 15)
        await pilot.pause()
        assert control.value == 0.0
        assert app.query_one(StatusBar).field("guidance") == "guidance off"
        assert "off" in str(control.render())
    assert json.loads(studio_home.settings_file.read_text())["strength"] == 0.0
    again = make_app(studio_home, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.query_one("#control-strength").value == 0.0  # 0 is a choice, not "unset"


@pytest.mark.parametrize("stored", [-1, 3.5, "lots", None])
async def test_a_strength_out_of_range_in_settings_falls_back_to_the_default(
    studio_home, tmp_path, stored
):
    studio_home.settings_file.write_text(json.dumps({"strength": stored, "emotion": "joy"}))
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.query_one("#control-strength").value == 1.0
        assert app.query_one("#picker").emotion == "joy"


async def test_a_guided_poem_streams_and_is_saved_with_its_strength(studio_home, tmp_path):
    from studio.tui.widgets.poem_panel import PoemPanel
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#picker").pick("joy")
        app.query_one("#control-strength").value = 2.5
        await settle(app, pilot)
        app.query_one("#first-line").focus()
        await write_poem(app, pilot, "Joy comes laughing")
        poem = app.history.current
        assert poem.finished and poem.emotion == "joy" and poem.text.startswith("Joy comes")
        assert poem.sampling["strength"] == 2.5 and poem.applied_strength == 2.5
        assert app.query_one(StatusBar).field("guidance") == "strength 2.50"
        assert "strength 2.50" in app.query_one(PoemPanel).border_subtitle
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    saved = studio_home.poems_file.read_text(encoding="utf-8")
    assert "- emotion: joy\n" in saved and "strength 2.5" in saved
    assert "strength applied" not in saved


async def test_a_neutral_poem_records_that_no_guidance_was_applied(studio_home, tmp_path):
    from studio.core.poemfile import read_poems
    from studio.tui.widgets.status_bar import StatusBar

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "The lamps")
        assert app.history.current.applied_strength == 0.0
        assert app.query_one(StatusBar).field("guidance") == "guidance off"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    (saved,) = read_poems(studio_home.poems_file)
    assert saved.emotion == "neutral"
    assert saved.settings["strength"] == 1.0 and saved.settings["strength_applied"] == 0.0


async def test_without_a_neutral_model_guidance_falls_back_with_a_notice(
    home, tiny_models, tmp_path
):
    from studio.tui.widgets.status_bar import StatusBar

    install_models(home, tiny_models, ("joy",))
    home.settings_file.write_text(json.dumps({"emotion": "joy", "strength": 2.0}))
    app = make_app(home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "Joy comes")
        poem = app.history.current
        assert poem.finished and poem.applied_strength == 0.0
        assert "neutral" in poem.notice
        assert app.query_one(StatusBar).field("guidance") == "guidance off"
        assert any("neutral" in m for m in messages(app))


async def test_a_blended_poem_streams_and_is_saved_under_its_spec(
    studio_home, tiny_models, tmp_path
):
    from studio.core.poemfile import read_poems
    from studio.tui.widgets.poem_panel import PoemPanel
    from studio.tui.widgets.status_bar import StatusBar

    install_models(studio_home, tiny_models, ("sadness",))
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.query_one("#blend-with").disabled  # neutral is never blended
        app.query_one("#picker").pick("joy")
        await settle(app, pilot)
        app.query_one("#blend-with").value = "sadness"
        await pilot.pause()  # the mix control is enabled once the blend has a partner
        app.query_one("#blend-mix").focus()
        await pilot.press("left", "left")  # 50/50 -> 70/30
        await settle(app, pilot)
        assert app.blend_spec == "joy=0.70+sadness=0.30"
        app.query_one("#control-strength").value = 1.5
        app.query_one("#first-line").focus()
        await write_poem(app, pilot, "O weep")
        poem = app.history.current
        assert poem.finished and poem.text.startswith("O weep\n")
        assert poem.emotion == "joy=0.70+sadness=0.30" and poem.applied_strength == 1.5
        assert "joy=0.70+sadness=0.30" in app.query_one(PoemPanel).border_title
        assert app.query_one(StatusBar).field("model").startswith("joy=0.70+sadness=0.30 · ")
        meter = rendered(app, "#meter")
        lit = [line.split()[1] for line in meter.splitlines() if line.startswith("▶")]
        assert lit == ["joy", "sadness"]
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        await pilot.press("f3")
        await pilot.pause()
        assert "- emotion: joy=0.70+sadness=0.30" in rendered(app, "#saved-body")
    (saved,) = read_poems(studio_home.poems_file)
    assert saved.emotion == "joy=0.70+sadness=0.30" and saved.text == poem.text
    assert saved.settings["strength"] == 1.5 and "strength_applied" not in saved.settings
    settings = json.loads(studio_home.settings_file.read_text())
    assert settings["blend_with"] == "sadness" and settings["blend_mix"] == 0.3
    again = make_app(studio_home, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.blend_spec == "joy=0.70+sadness=0.30"
        assert again.query_one("#blend-with").value == "sadness"


async def test_changing_the_blend_mid_stream_rewrites_the_poem_in_it(
    studio_home, tiny_models, tmp_path
):
    install_models(studio_home, tiny_models, ("sadness",))
    studio_home.settings_file.write_text(json.dumps({"emotion": "joy"}))
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        slow_stream(app)
        await pilot.press(*"The night", "enter")
        await wait_for_text(app, pilot)
        app.query_one("#blend-with").value = "sadness"
        await settle(app, pilot)
        first, second = app.history._poems
        assert first.emotion == "joy" and first.stop_reason == "cancelled"
        assert second.emotion == "joy=0.50+sadness=0.50" and second.finished
        assert second.first_line == "The night" and second.seed == first.seed


async def test_a_blend_with_an_untrained_emotion_says_how_to_train_it(studio_home, tmp_path):
    studio_home.settings_file.write_text(json.dumps({"emotion": "joy", "blend_with": "fear"}))
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.blend_spec == "joy=0.50+fear=0.50"
        await write_poem(app, pilot, "I fear")
        assert any("poetstudio train --emotion fear" in m for m in messages(app))
        assert len(app.history) == 0


async def test_the_precision_reaches_the_generation_core(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path, precision="fp32")
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "grey sea")
        assert app.history.current.finished
        assert app.poet.loader.precision == "fp32"


async def test_choosing_a_form_gets_its_tables_ready_before_the_first_poem(
    studio_home, tmp_path, monkeypatch
):
    from studio.core.generation.poet import Poet

    prepared: list[str] = []
    prepare = Poet.prepare

    def recorded(self, emotion, params=None):
        prepared.append(params.form)
        prepare(self, emotion, params)

    monkeypatch.setattr(Poet, "prepare", recorded)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert prepared == []  # free verse has no tables to build
        app.query_one("#control-form").value = "sonnet"
        await settle(app, pilot)
        assert prepared == ["sonnet"]
        app.query_one("#control-temperature").value = "0.9"
        await settle(app, pilot)
        assert prepared == ["sonnet"]  # the same form: nothing more to build


async def test_a_quatrain_shows_syllables_and_rhyme_letters_and_is_saved_with_its_form(
    studio_home, tmp_path
):
    from studio.core.poemfile import read_poems
    from trainer.common.form import parse_form
    from trainer.evaluation.formscore import line_marks

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.query_one("#control-form").value = "quatrain"
        app.query_one("#control-syllables").value = "0"
        await pilot.pause()
        assert app.query_one("#control-syllables").has_class("invalid")
        assert "not applied: syllables" in rendered(app, "#status")
        app.query_one("#control-syllables").value = "8"
        await pilot.pause()
        assert "not applied" not in rendered(app, "#status")
        await write_poem(app, pilot, "The [bold]night[/] is cold and long")
        poem = app.history.current
        assert (poem.sampling["form"], poem.sampling["syllables"]) == ("quatrain", "8")
        verses = [line for line in poem.text.splitlines() if line.strip()]
        assert verses[0] == "The [bold]night[/] is cold and long"
        shown = [line for line in rendered(app, "#poem-body").splitlines() if line.strip()]
        # The tiny model may end early: each line it wrote shows its count and letter.
        assert len(shown) == len(verses) >= 2
        marks = line_marks(verses, parse_form("quatrain", syllables="8"))
        letters = "ABAB"[: len(verses)]
        for line, verse, mark, letter in zip(shown, verses, marks, letters, strict=True):
            flag = "!" if mark.missed else " "
            assert line == f"{mark.syllables:>2} {letter} {flag} {verse}"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    [record] = read_poems(studio_home.poems_file)
    # The md reader reads a bare "8" back as a number.
    assert (record.settings["form"], str(record.settings["syllables"])) == ("quatrain", "8")
    remembered = json.loads(studio_home.settings_file.read_text())
    assert (remembered["form"], remembered["syllables"]) == ("quatrain", "8")
