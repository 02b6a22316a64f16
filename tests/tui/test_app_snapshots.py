"""SVG snapshots of the studio's main screens (`pytest --snapshot-update` rewrites them)."""

from __future__ import annotations

import json
from pathlib import Path

# The fixtures are shared with the Pilot tests: imported so that pytest finds them here.
from studio.core.title import title_for
from tests.tui.test_app import (  # noqa: F401
    SIZE,
    install_models,
    make_app,
    poll_jobs,
    settle,
    studio_home,
    tiny_models,
)
from trainer.common.emotions import count_emotions
from trainer.common.home import DataHome
from trainer.training.events import emit

VERSE = (
    "and the grey sea sighs beneath the stars.\n"
    "O weep for the friend that is gone,\n"
    "his grave is cold beneath the rain.\n"
)


def steady(app) -> None:
    """Make the screen deterministic: no blinking cursors, fixed timing figures."""
    from textual.widgets import Input

    for field in app.query(Input):
        field.cursor_blink = False
    # Time to first token and tokens/s vary run to run; the layout is what is compared.
    # The data home is a fresh temporary folder each run.
    for path_label in app.query("#saved-path"):
        path_label.update("<home>/poems.md")
    status = app.query_one("#status")
    if status.field("ttft"):
        status.set(ttft="TTFT 42 ms", speed="100.0 tok/s · 200 tokens")


def show_fixed_verse(app) -> None:
    """Put fixed verse in place of the poem on screen, after its first line.

    The tiny test model's words depend on its tokenizer, which `tokenizers` does not build
    identically in every process.
    """
    poem = app.history.current
    poem.text = poem.text.splitlines()[0] + "\n" + VERSE
    poem.counts = count_emotions(poem.text)
    poem.title = title_for(poem.text)
    app._show_current()


def test_write_screen_with_a_poem(snap_compare, studio_home: DataHome, tmp_path: Path):  # noqa: F811
    app = make_app(studio_home, tmp_path, device="cpu")

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        await pilot.press(*"[bold]The lamps[/bold] are out", "enter")
        await settle(app, pilot)
        show_fixed_verse(app)
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_write_screen_with_a_guided_blend(
    snap_compare,
    studio_home: DataHome,  # noqa: F811
    tiny_models: Path,  # noqa: F811
    tmp_path: Path,
):
    install_models(studio_home, tiny_models, ("sadness",))
    remembered = {"emotion": "joy", "blend_with": "sadness", "blend_mix": 0.3, "strength": 1.5}
    studio_home.settings_file.write_text(json.dumps(remembered))
    app = make_app(studio_home, tmp_path, device="cpu")

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        await pilot.press(*"O weep for the friend", "enter")
        await settle(app, pilot)
        show_fixed_verse(app)
        # The strength control has the focus: its highlight and its keys in the footer show.
        app.query_one("#control-strength").focus()
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_write_screen_without_models(snap_compare, home: DataHome, tmp_path: Path):
    app = make_app(home, tmp_path)

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_training_screen_with_a_finished_job(snap_compare, studio_home: DataHome, tmp_path: Path):  # noqa: F811
    job = studio_home.jobs / "20250101-120000-fear-ab12"
    job.mkdir()
    (job / "job.json").write_text('{"id": "20250101-120000-fear-ab12", "emotion": "fear"}')
    events = job / "events.jsonl"
    emit(events, "start", emotion="fear", method="lora", device="cpu", total_steps=6)
    for step, loss in enumerate((5.2, 4.9, 4.5, 4.4, 4.0, 3.9), start=1):
        emit(events, "step", step=step, epoch=0.5, loss=loss, smooth_loss=loss, tokens_per_s=210.0)
    emit(events, "eval", step=6, val_loss=4.1, val_ppl=60.3, best=True)
    emit(events, "done", step=6, model_dir=str(studio_home.models / "fear"))
    app = make_app(studio_home, tmp_path)

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        poll_jobs(app)
        await settle(app, pilot)
        await pilot.press("f2")
        await settle(app, pilot)
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_saved_poems_screen(snap_compare, studio_home: DataHome, tmp_path: Path):  # noqa: F811
    from studio.core.poemfile import SavedPoem, append_poem

    poem = SavedPoem(
        text="The lamps are out along the quay,\nand the grey sea sighs [beneath] the stars.",
        emotion="sadness",
        first_line="The lamps are out along the quay,",
        model="user:models/sadness",
        settings={"temperature": 0.8, "top_p": 0.95, "seed": 7},
        created="2025-01-01T12:00:00+00:00",
    )
    append_poem(studio_home.poems_file, poem)
    app = make_app(studio_home, tmp_path)

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        await pilot.press("f3")
        await settle(app, pilot)
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_write_screen_line_by_line(snap_compare, studio_home: DataHome, tmp_path: Path):  # noqa: F811
    """Line by line with a quatrain: the draft, the next line's targets, candidates, steering."""
    from studio.core.cowrite.draft import Draft

    remembered = {"mode": "lines", "form": "quatrain", "emotion": "joy"}
    studio_home.settings_file.write_text(json.dumps(remembered))
    draft = Draft.start(studio_home, "joy")
    draft.add("The lamps are out along the quay,", "typed", "joy")
    draft.add("and the grey sea sighs beneath the stars.", "chosen", "joy", of=3)
    app = make_app(studio_home, tmp_path, device="cpu")

    async def run_before(pilot) -> None:
        await settle(app, pilot)
        app.clear_notifications()
        candidates = app.query_one("#candidates")
        candidates.replace_all(
            ["the [gulls] go home across the bay,", "O weep for the friend that is gone,", "far"],
            "Next line",
        )
        app.query_one("#steer-rhyme_with").value = "quay"
        app._show_draft()
        candidates.focus()
        steady(app)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
