"""Saving a poem once, and keeping the terminal's key bursts (escape echoes, pastes) out of the
first-line box: Pilot tests with tiny models, keys parsed from raw terminal bytes where it
matters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import events
from textual._xterm_parser import XTermParser
from textual.widgets import Input

from studio.core.poemfile import read_poems
from studio.tui.key_bursts import BURST_S, escape_key, in_burst, is_escape_echo
from studio.tui.widgets.first_line import FirstLineInput, one_line

# The fixtures are shared with the other Pilot tests: imported so that pytest finds them here.
from tests.tui.test_app import (  # noqa: F401
    SIZE,
    make_app,
    settle,
    slow_stream,
    studio_home,
    tiny_models,
    wait_for_text,
    write_poem,
)
from trainer.common.home import DataHome


def first_line(app) -> Input:
    """The first-line box (found by its kind, whatever its id)."""
    return app.query_one(FirstLineInput)


def terminal_read(app, data: str) -> None:
    """Hand `data` to the app as the driver does with one read from the terminal: parsed by
    Textual's own parser, every event posted in order.

    The keys of one read are made microseconds apart; they are stamped with one time here so
    that a test process descheduled mid-loop cannot split them into two bursts.
    """
    parser = XTermParser()
    parsed = [*parser.feed(data), *parser.feed("")]
    now = parsed[0].time if parsed else 0.0
    for event in parsed:
        if isinstance(event, events.Key):
            event.time = now
        event.set_sender(app)
        app.post_message(event)


def saved_entries(home: DataHome) -> list:
    path = home.poems_file
    return read_poems(path) if path.exists() else []


# ----- saving once -----------------------------------------------------------------------------


async def test_ctrl_s_saves_a_poem_once_and_then_says_it_is_already_saved(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "The sea")
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        status = app.query_one("#status")
        saved_note = status.field("note")
        toasts: list[str] = []
        notify = app.notify

        def recording(message: str, **options: Any) -> None:
            toasts.append(message)
            notify(message, **options)

        app.notify = recording  # type: ignore[method-assign]
        for _ in range(3):
            await pilot.press("ctrl+s")
            await settle(app, pilot)
        # One toast says it; more would pile up over the poem (the status bar says it each time).
        assert toasts == [f"Already saved to {studio_home.poems_file}."]
        assert len(saved_entries(studio_home)) == 1
        assert saved_note == f"saved to {studio_home.poems_file}"
        assert status.field("note") == f"already saved to {studio_home.poems_file}"
        assert f"already saved to {studio_home.poems_file}" in str(status.render())
        # A burst while the one save is still being written adds nothing either.
        await pilot.press("ctrl+n")
        await settle(app, pilot)
        app.action_save()
        app.action_save()
        app.action_save()
        await settle(app, pilot)
        seeds = [entry.settings["seed"] for entry in saved_entries(studio_home)]
        assert seeds == [poem.seed for poem in app.history._poems]


async def test_ctrl_s_while_a_poem_streams_saves_nothing_and_says_why(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        slow_stream(app)
        await pilot.press(*"The sea", "enter")
        await wait_for_text(app, pilot)
        await pilot.press("ctrl+s")
        note = app.query_one("#status").field("note")
        assert note == "not saved: the poem is still being written (wait, or press Esc)"
        await settle(app, pilot)
        assert saved_entries(studio_home) == []


# ----- key echoes --------------------------------------------------------------------------------


async def test_escape_and_ctrl_s_bursts_never_put_a_caret_into_the_first_line(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        slow_stream(app)
        await pilot.press(*"The sea", "enter")
        await wait_for_text(app, pilot)
        # Esc, ctrl+s, Esc, ctrl+s ... in one read: Textual's parser turns each escape it cannot
        # pair into a "^" key (49 of them reached the box in the probe).
        terminal_read(app, "\x1b\x13" * 12 + "\x1b")
        await pilot.pause(0.2)
        await settle(app, pilot)
        assert first_line(app).value == "The sea"
        poem = app.history.current
        assert poem.stop_reason == "cancelled", "the escapes reached the app as Escape: stop"
        assert len(app.history) == 1
        await pilot.press("enter")  # the next poem starts from the first line as typed
        await settle(app, pilot)
        assert app.history.current.first_line == "The sea"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        # The burst's last ctrl+s may have saved the stopped poem too: its first line is whole.
        assert {entry.first_line for entry in saved_entries(studio_home)} == {"The sea"}


async def test_a_typed_caret_is_text(studio_home: DataHome, tmp_path: Path) -> None:  # noqa: F811
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("a", "^", "b", "^")
        await pilot.pause(0.2)
        assert first_line(app).value == "a^b^"
        terminal_read(app, "^c")  # a caret followed by text in one read is text too
        await pilot.pause(0.2)
        assert first_line(app).value == "a^b^^c"


async def test_a_ctrl_key_reported_with_its_letter_is_a_command_not_text(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await write_poem(app, pilot, "The sea")
        # xterm's modifyOtherKeys form of ctrl+s and ctrl+n: Textual gives them the letter.
        terminal_read(app, "\x1b[27;5;115~")
        await settle(app, pilot)
        assert first_line(app).value == "The sea"
        assert [entry.first_line for entry in saved_entries(studio_home)] == ["The sea"]
        terminal_read(app, "\x1b[27;5;110~")
        await settle(app, pilot)
        assert first_line(app).value == "The sea" and len(app.history) == 2


# ----- pastes ------------------------------------------------------------------------------------


async def test_an_unbracketed_paste_is_one_first_line_and_never_submits(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        # A terminal without bracketed paste sends each line break as Enter (or a newline).
        terminal_read(app, "The sea\rwas grey\r\nand cold\tand still\r")
        await pilot.pause(0.2)
        await settle(app, pilot)
        assert len(app.history) == 0, "a paste never submits"
        box = first_line(app)
        assert box.value == "The sea was grey and cold and still " and box.has_focus
        await pilot.press("enter")  # typed: submits
        await settle(app, pilot)
        assert len(app.history) == 1
        assert app.history.current.first_line.strip() == "The sea was grey and cold and still"


async def test_a_bracketed_paste_is_one_first_line_and_never_submits(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        terminal_read(app, "\x1b[200~The sea\r\nwas grey\rand cold\n\n\x1b[201~")
        await pilot.pause(0.2)
        await settle(app, pilot)
        assert first_line(app).value == "The sea was grey and cold"
        assert len(app.history) == 0


async def test_ctrl_v_of_poem_lines_copied_in_the_studio_is_one_first_line(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.copy_to_clipboard("The sea\nwas grey\n")
        await pilot.press("ctrl+v")
        assert first_line(app).value == "The sea was grey"
        assert len(app.history) == 0


# ----- the rules themselves ----------------------------------------------------------------------


def test_one_line_joins_line_breaks_with_single_spaces() -> None:
    assert one_line(" The sea \r\n\r\n was grey\u2028and cold\n") == "The sea was grey and cold"
    assert one_line("a\tb") == "a\tb", "tabs inside a line are the line's own"
    assert one_line("\n\r\n") == ""


def test_a_caret_is_an_escape_echo_only_before_a_ctrl_key_in_its_burst() -> None:
    caret = events.Key("circumflex_accent", "^")
    ctrl_s = events.Key("ctrl+s", "\x13")
    ctrl_s.time = caret.time
    assert is_escape_echo(caret, ctrl_s)
    later = events.Key("ctrl+s", "\x13")
    later.time = caret.time + 2 * BURST_S  # a hand: "^" then ctrl+s
    assert not is_escape_echo(caret, later)
    for key, character in (("enter", "\r"), ("ctrl+j", "\n"), ("tab", "\t"), ("s", "s")):
        follower = events.Key(key, character)
        follower.time = caret.time
        assert not is_escape_echo(caret, follower), key
    assert escape_key().key == "escape"
    assert not in_burst(None, caret)
