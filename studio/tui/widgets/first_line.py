"""The first-line box: one line of text, whatever the terminal sends into it.

A paste (the terminal's, or ctrl+v of text copied in the studio) is one first line and never
submits: its line breaks become spaces, rather than cutting the paste at the first one, so
nothing pasted is silently dropped (an overlong line is truncated later, with a notice). A ctrl
key that a terminal reports with its letter (xterm's modifyOtherKeys sends ctrl+s as
`ESC [27;5;115~`, which Textual reads as ctrl+s with the character "s") is a command, never text;
so is alt+digit.
"""

from __future__ import annotations

import re

from textual import events
from textual.message import Message
from textual.widgets import Input

# Runs of line breaks (every one str.splitlines knows) and the blanks around them.
_LINE_BREAKS = re.compile(r"[ \t]*[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+[ \t]*")


def one_line(text: str) -> str:
    """`text` as one line: each run of line breaks is a single space; ends stripped."""
    return _LINE_BREAKS.sub(" ", text).strip()


class FirstLineInput(Input):
    """A single-line Input that keeps pastes and ctrl keys out of the line's breaks and text."""

    class LineBreak(Message):
        """A line break that came inside a paste (posted, so it lands after the keys before it)."""

    def _on_first_line_input_line_break(self, event: LineBreak) -> None:
        # One space, never a submit.
        before = self.value[: self.cursor_position]
        if before and not before[-1].isspace():
            self.insert_text_at_cursor(" ")

    # Textual calls the `_on_*` handler of every class in the MRO; prevent_default() keeps
    # Input's own from running after these.

    async def _on_key(self, event: events.Key) -> None:
        if event.key.startswith("ctrl+") or _is_alt_digit(event.key):
            # Not text: Input would insert the letter; the key bubbles on to the bindings
            # (alt+digit accepts a candidate line by line).
            event.prevent_default()

    def action_paste(self) -> None:
        """Paste the app's own clipboard (ctrl+v), which may hold lines of a poem, as one line."""
        start, end = self.selection
        self.replace(one_line(self.app.clipboard), start, end)

    def _on_paste(self, event: events.Paste) -> None:
        line = one_line(event.text)
        if line:
            selection = self.selection
            if selection.is_empty:
                self.insert_text_at_cursor(line)
            else:
                self.replace(line, *selection)
        event.prevent_default()
        event.stop()


def _is_alt_digit(key: str) -> bool:
    return key.startswith("alt+") and key[4:].isdigit()
