"""Line by line in the studio: Pilot tests with tiny models, over the real co-writing core."""
# ruff: noqa: F811 - the shared fixtures are imported by name, and taken by name

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.core.cowrite.draft import Draft, draft_path
from studio.core.cowrite.writer import CoWriter
from studio.core.poemfile import read_poems
from studio.core.settings import LINE_BY_LINE, WHOLE_POEM
from tests.tui.test_app import (  # noqa: F401
    SIZE,
    make_app,
    messages,
    rendered,
    settle,
    studio_home,
    tiny_models,
)
from trainer.common import phonetics
from trainer.common.home import DataHome

FIRST = "The lamps are out along the quay"


async def line_by_line(app, pilot, first_line: str = FIRST) -> None:
    """Switch to line by line, type `first_line` (nothing: none) and wait for the candidates."""
    await settle(app, pilot)
    await pilot.press("f4")
    await pilot.press(*first_line, "enter")
    await settle(app, pilot)


def draft_lines(app) -> list[str]:
    return app.line_draft.texts


def kept(home: DataHome) -> list[tuple[str, str, int | None]]:
    """The draft kept in the data home: each line's text, how it came and from how many."""
    draft = Draft.open(home)
    assert draft is not None
    return [(line.text, line.how, line.of) for line in draft.lines]


async def focus_candidates(app, pilot) -> None:
    app.query_one("#candidates").focus()
    await pilot.pause()


async def test_f4_switches_to_line_by_line_and_the_studio_remembers_it(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert not app.query_one("#candidates").display
        await pilot.press("f4")
        assert app.line_by_line and app.query_one("#candidates").display
        assert json.loads(studio_home.settings_file.read_text())["mode"] == LINE_BY_LINE
    again = make_app(studio_home, tmp_path)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.line_by_line and again.query_one("#steer").display
        await pilot.press("f4")
        assert json.loads(studio_home.settings_file.read_text())["mode"] == WHOLE_POEM


async def test_a_typed_first_line_then_a_candidate_accepted_with_its_number(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        candidates = app.candidate_texts
        assert len(candidates) == 3 and all(text.strip() for text in candidates)
        await focus_candidates(app, pilot)
        await pilot.press("2")
        await settle(app, pilot)
        assert draft_lines(app) == [FIRST, candidates[1]]
        assert kept(studio_home) == [(FIRST, "typed", None), (candidates[1], "chosen", 3)]
        # The next line's candidates came at once, and the poem shows the lines.
        assert len(app.candidate_texts) == 3
        assert candidates[1] in rendered(app, "#poem-body")


async def test_alt_digit_accepts_from_the_line_box_and_enter_accepts_a_typed_line(
    studio_home, tmp_path
):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot, "")  # from nothing: candidates for the first line
        first = app.candidate_texts[0]
        await pilot.press("alt+1")
        await settle(app, pilot)
        await pilot.press(*"my own [bold] line", "enter")
        await settle(app, pilot)
        assert kept(studio_home) == [(first, "chosen", 3), ("my own [bold] line", "typed", None)]
        assert app.query_one("#first-line").value == ""
        assert "my own [bold] line" in rendered(app, "#poem-body")


async def test_a_terminals_alt_digit_accepts_too(studio_home, tmp_path):
    from tests.tui.test_keys_and_saving import terminal_read

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        third = app.candidate_texts[2]
        terminal_read(app, "\x1b3")  # alt+3, which Textual reads as "£"
        await settle(app, pilot)
        assert draft_lines(app) == [FIRST, third]
        assert app.query_one("#first-line").value == ""


async def test_e_edits_the_highlighted_candidate_and_enter_accepts_the_edit(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        second = app.candidate_texts[1]
        await focus_candidates(app, pilot)
        await pilot.press("down", "e")
        box = app.query_one("#first-line")
        assert box.value == second and box.has_focus
        await pilot.press(*" anew", "enter")
        await settle(app, pilot)
        assert kept(studio_home)[-1] == (f"{second} anew", "edited", 3)


async def test_ctrl_z_takes_back_the_last_line_and_then_says_there_is_none(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        await pilot.press("alt+1")
        await settle(app, pilot)
        assert len(draft_lines(app)) == 2
        await pilot.press("ctrl+z")
        await settle(app, pilot)
        assert draft_lines(app) == [FIRST]
        assert kept(studio_home) == [(FIRST, "typed", None)]
        await pilot.press("ctrl+z")
        await settle(app, pilot)
        assert draft_lines(app) == []
        await pilot.press("ctrl+z")
        await settle(app, pilot)
        assert draft_lines(app) == []
        assert "nothing to take back" in app.query_one("#status").field("note")


async def test_r_writes_new_candidates_with_new_seeds(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        seeds = [candidate.seed for candidate in app._cowriter.candidates]
        await focus_candidates(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        again = [candidate.seed for candidate in app._cowriter.candidates]
        assert len(again) == 3 and not set(seeds) & set(again)
        assert draft_lines(app) == [FIRST]


async def test_a_word_to_use_steers_every_candidate_and_is_asked_of_one_line(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        app.query_one("#steer-use").value = "grave"
        app.query_one("#steer-topic").value = "sea"
        await focus_candidates(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        texts = app.candidate_texts
        assert all("grave" in phonetics.words_of(text) for text in texts), texts
        await pilot.press("1")
        await settle(app, pilot)
        assert "grave" in phonetics.words_of(draft_lines(app)[-1])
        # The word was for that line; the topic stays for the next.
        assert app.query_one("#steer-use").value == ""
        assert app.query_one("#steer-topic").value == "sea"


async def test_a_bad_steering_word_is_a_one_line_notice_and_writes_nothing(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        before = app._line_run
        app.query_one("#steer-rhyme_with").value = "two words"
        await focus_candidates(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert app._line_run is before
        assert app.query_one("#steer-rhyme_with").has_class("invalid")
        assert "rhyme takes one word" in app.query_one("#status").field("note")


async def test_rewriting_a_middle_line_replaces_it_alone(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        for _ in range(2):
            await pilot.press("alt+1")
            await settle(app, pilot)
        first, middle, last = draft_lines(app)
        panel = app.query_one("#poem")
        panel.focus()
        await pilot.press("up", "up", "w")
        await settle(app, pilot)
        assert panel.selected == 2
        assert app.query_one("#candidates").border_title.startswith("Line 2")
        rewrite = app.candidate_texts[0]
        await pilot.press("1")
        await settle(app, pilot)
        assert draft_lines(app) == [first, rewrite, last]
        assert kept(studio_home)[1] == (rewrite, "chosen", 3)


async def test_finish_writes_the_rest_of_the_poem(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        await pilot.press("ctrl+f")
        await settle(app, pilot)
        lines = app.line_draft.lines
        assert len(lines) > 1 and lines[0].how == "typed"
        assert {line.how for line in lines[1:]} == {"finish"}
        assert kept(studio_home) == [(line.text, line.how, line.of) for line in lines]


async def test_ctrl_s_saves_the_poem_with_each_lines_provenance(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        await pilot.press("alt+2")
        await settle(app, pilot)
        await pilot.press(*"and mine", "enter")
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        (poem,) = read_poems(studio_home.poems_file)
        assert poem.text.splitlines() == draft_lines(app)
        assert poem.provenance == [
            {"how": "typed", "of": None, "emotion": "neutral"},
            {"how": "chosen", "of": 3, "emotion": "neutral"},
            {"how": "typed", "of": None, "emotion": "neutral"},
        ]
        assert poem.model and poem.runtime
        # Saved: nothing left to offer back, and a second ctrl+s saves nothing more.
        assert not draft_path(studio_home).exists()
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        assert len(read_poems(studio_home.poems_file)) == 1


async def test_keys_are_handled_while_the_candidates_still_stream(
    studio_home, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    """Accepting while rows stream takes the candidate as it stands (no timing asserted: the
    rows are held mid-line until the key has been handled)."""
    gate = threading.Event()
    streamed = CoWriter.stream

    def held(self, *args, **kwargs) -> Iterator:
        for update in streamed(self, *args, **kwargs):
            yield update
            if update.text and len(self.lines) == 1:
                gate.wait(timeout=20)

    monkeypatch.setattr(CoWriter, "stream", held)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f4", *FIRST, "enter")
        candidates = app.query_one("#candidates")
        while not any(candidates.texts):
            await pilot.pause(0.02)
        assert candidates.streaming and not app._line_run.done
        row = next(i for i, text in enumerate(candidates.texts) if text)
        as_it_stands = candidates.texts[row]
        await focus_candidates(app, pilot)
        await pilot.press(str(row + 1))
        assert draft_lines(app) == [FIRST, as_it_stands]
        gate.set()
        await settle(app, pilot)
        assert draft_lines(app) == [FIRST, as_it_stands]


async def test_escape_stops_the_candidates_where_they_stand(studio_home, tmp_path, monkeypatch):
    gate = threading.Event()
    streamed = CoWriter.stream

    def held(self, *args, **kwargs) -> Iterator:
        for update in streamed(self, *args, **kwargs):
            yield update
            if update.text:
                gate.wait(timeout=20)

    monkeypatch.setattr(CoWriter, "stream", held)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f4", *FIRST, "enter")
        candidates = app.query_one("#candidates")
        while not any(candidates.texts):
            await pilot.pause(0.02)
        await pilot.press("escape")
        gate.set()
        await settle(app, pilot)
        assert app._line_run.cancel.is_set()
        assert app.query_one("#status").field("state") == "stopped"
        assert all(c.ended == "cancelled" or c.done for c in app._cowriter.candidates)
        assert draft_lines(app) == [FIRST]


async def test_a_kept_draft_is_offered_back_when_the_studio_opens(studio_home, tmp_path):
    draft = Draft.start(studio_home, "joy")
    draft.add(FIRST, "typed", "joy")
    draft.add("and the grey sea sighs", "chosen", "joy", of=3)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert not app.line_by_line
        assert any("draft of 2 lines is kept" in text for text in messages(app))
        await pilot.press("f4")
        await settle(app, pilot)
        assert draft_lines(app) == [FIRST, "and the grey sea sighs"]
        assert "and the grey sea sighs" in rendered(app, "#poem-body")
        # Going on from it keeps every line.
        await pilot.press(*"a third line", "enter")
        await settle(app, pilot)
        assert [text for text, _, _ in kept(studio_home)] == [
            FIRST,
            "and the grey sea sighs",
            "a third line",
        ]


async def test_the_draft_comes_back_on_screen_when_the_studio_opens_line_by_line(
    studio_home: DataHome, tmp_path: Path
):
    studio_home.settings_file.write_text(json.dumps({"mode": LINE_BY_LINE}))
    Draft.start(studio_home, "neutral").add(FIRST, "typed", "neutral")
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.line_by_line and draft_lines(app) == [FIRST]
        assert FIRST in rendered(app, "#poem-body")
        assert "your draft is back" in rendered(app, "#poem-notice")


async def test_a_damaged_draft_is_left_as_it_is_and_said(studio_home: DataHome, tmp_path: Path):
    path = draft_path(studio_home)
    path.write_text("{not json")
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        assert path.read_text() == "{not json"
        assert "draft" in rendered(app, "#poem-notice")


async def test_ctrl_n_asks_once_before_dropping_an_unsaved_draft(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        await pilot.press("ctrl+n")
        assert draft_lines(app) == [FIRST]
        assert "ctrl+n again" in app.query_one("#status").field("note")
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert draft_lines(app) == [] and not draft_path(studio_home).exists()


def test_the_mode_and_the_candidate_count_round_trip(tmp_path: Path) -> None:
    from studio.core.settings import StudioSettings, load_settings, save_settings

    path = tmp_path / "settings.json"
    save_settings(path, StudioSettings(mode=LINE_BY_LINE, candidates=8))
    loaded = load_settings(path)
    assert (loaded.mode, loaded.candidates) == (LINE_BY_LINE, 8)


@pytest.mark.parametrize(
    "raw",
    [{"mode": "sideways"}, {"mode": 3}, {"candidates": 9}, {"candidates": 0}, {"candidates": "3"}]
    + [{"candidates": True}, {"candidates": 2.5}],
)
def test_a_mode_or_candidate_count_not_known_falls_back_to_the_default(
    tmp_path: Path, raw: dict
) -> None:
    from studio.core.settings import load_settings

    path = tmp_path / "settings.json"
    path.write_text(json.dumps(raw))
    loaded = load_settings(path)
    assert (loaded.mode, loaded.candidates) == (WHOLE_POEM, None)


async def test_the_number_of_candidates_is_a_remembered_setting(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        app.query_one("#steer-count").focus()
        await pilot.press("right", "right")
        assert json.loads(studio_home.settings_file.read_text())["candidates"] == 5
        await focus_candidates(app, pilot)
        await pilot.press("r")
        await settle(app, pilot)
        assert len(app.candidate_texts) == 5
        await pilot.press("5")
        await settle(app, pilot)
        assert kept(studio_home)[-1][1:] == ("chosen", 5)


async def test_an_alt_digit_with_its_character_never_lands_in_the_line_box(
    home: DataHome, tmp_path: Path
):
    from textual import events

    app = make_app(home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        box = app.query_one("#first-line")
        box.focus()
        app.post_message(events.Key("alt+1", "1"))  # as the kitty keyboard protocol sends it
        await settle(app, pilot)
        assert box.value == ""


async def test_each_line_keeps_the_emotion_it_was_written_with(studio_home, tmp_path):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await line_by_line(app, pilot)
        await pilot.press("alt+1")  # written with neutral
        await settle(app, pilot)
        app.query_one("#picker").pick("joy")
        await settle(app, pilot)
        await pilot.press("enter")  # an empty box: new candidates, now in joy
        await settle(app, pilot)
        assert app._cowriter.emotion == "joy"
        await pilot.press("alt+1")
        await settle(app, pilot)
        draft = Draft.open(studio_home)
        assert [(line.how, line.emotion) for line in draft.lines] == [
            ("typed", "neutral"),
            ("chosen", "neutral"),
            ("chosen", "joy"),
        ]
        assert "Line by line · joy" in app.query_one("#poem").border_title


def keep_writing_command(app, title: str):
    """The palette's "Keep writing" command for the saved poem titled `title`."""
    from textual.content import Content

    commands = app.get_system_commands(app.screen)
    shown = {Content.from_markup(c.title).plain: c.callback for c in commands}
    return shown[f"Keep writing: {title}"]


async def test_a_saved_poem_opens_line_by_line_with_its_provenance(studio_home, tmp_path):
    from studio.core.poemfile import SavedPoem, append_poem

    provenance = [
        {"how": "typed", "of": None, "emotion": "joy"},
        {"how": "chosen", "of": 3, "emotion": "neutral"},
        {"how": "edited", "of": 5, "emotion": "joy"},
    ]
    text = "The lamps are out\nand the sea [sighs]\n\nthe stars come home"
    poem = SavedPoem(text, "joy", title="[b]Lamps[/b", provenance=provenance)
    append_poem(studio_home.poems_file, poem)
    whole = SavedPoem("O weep\nfor the friend\nthat is gone", "neutral", first_line="O weep")
    append_poem(studio_home.poems_file, whole)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        keep_writing_command(app, "[b]Lamps[/b")()  # a title read as markup would fail
        await settle(app, pilot)
        assert app.line_by_line
        assert draft_lines(app) == [
            "The lamps are out",
            "and the sea [sighs]",
            "",
            "the stars come home",
        ]
        assert Draft.open(studio_home).provenance() == provenance
        assert "and the sea [sighs]" in rendered(app, "#poem-body")
        # Opened as it was saved: a new poem needs no second ctrl+n.
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        assert draft_lines(app) == []
        keep_writing_command(app, whole.title)()
        await settle(app, pilot)
        assert kept(studio_home) == [
            ("O weep", "typed", None),
            ("for the friend", "finish", None),
            ("that is gone", "finish", None),
        ]


@pytest.mark.parametrize("text", ["[b]x[/b", "[bold red]y[/]", "a\\[b]", "[$x]", "end\\", "$v"])
def test_text_made_markup_shows_exactly_as_it_was(text: str) -> None:
    from textual.content import Content

    from studio.tui.widgets.literal import as_markup

    assert Content.from_markup(as_markup(text)).plain == text


async def test_an_emotion_picked_while_candidates_stream_writes_them_again_in_it(
    studio_home, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    gate = threading.Event()
    streamed = CoWriter.stream

    def held(self, *args, **kwargs) -> Iterator:
        for update in streamed(self, *args, **kwargs):
            yield update
            if update.text and self.emotion == "neutral":
                gate.wait(timeout=20)

    monkeypatch.setattr(CoWriter, "stream", held)
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f4", *FIRST, "enter")
        candidates = app.query_one("#candidates")
        while not any(candidates.texts):
            await pilot.pause(0.02)
        first_run = app._line_run
        app.query_one("#picker").pick("joy")
        await pilot.pause()
        gate.set()
        await settle(app, pilot)
        assert first_run.cancel.is_set() and app._line_run.emotion == "joy"
        assert app._cowriter.emotion == "joy" and len(app.candidate_texts) == 3
        await pilot.press("alt+1")
        await settle(app, pilot)
        assert kept(studio_home)[-1][1:] == ("chosen", 3)
        assert Draft.open(studio_home).lines[-1].emotion == "joy"
