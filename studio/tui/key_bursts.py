"""Keys that came in one burst from the terminal, told from typed ones by when Textual's input
parser made them (`Key.time`): the keys of one read from the terminal are made microseconds
apart, and no hand types two keys within BURST_S.

The studio needs to know for two repairs:
- Escape echoes. Given an escape, a control key and then another escape (Esc then ctrl+s pressed
  in a quick burst, or alt+ctrl+s, which terminals send as an escape and ctrl+s), Textual's parser
  cannot pair the first escape and re-issues it as a printable "^" key, which an Input inserts: a
  burst of ctrl+s while a poem streamed once put 49 "^" into the first-line box. A "^" followed
  within the burst by a ctrl key is that escape, not text.
- Unbracketed pastes. A terminal without bracketed paste (or `tmux paste-buffer` without -p)
  sends a paste as keys, with Enter for each line break, and Enter submits the first-line box: an
  Enter (or a newline or tab) within the burst of the key before it is part of a paste.
"""

from __future__ import annotations

from textual import events

# Keys made closer together than this came from one read of the terminal. Typing is slower
# (even a fast typist's two keys are some 30 ms apart); a loaded machine delays the parser by
# a few ms at most between keys of one read.
BURST_S = 0.015
# How long a "^" is held back to see whether a ctrl key follows it in the same burst; the
# follower of an echo is already queued, so this only delays a typed "^" (unnoticeably).
CARET_HOLD_S = 0.05
CARET = "circumflex_accent"
# Line breaks inside a paste; a tab would move the focus out of the box mid-paste.
LINE_BREAK_KEYS = frozenset({"enter", "ctrl+j", "tab"})


def in_burst(previous_time: float | None, key: events.Key) -> bool:
    """Whether `key` came in the same burst as the key made at `previous_time`."""
    return previous_time is not None and 0 <= key.time - previous_time < BURST_S


def is_escape_echo(caret: events.Key, following: events.Key) -> bool:
    """Whether `caret` ("^") was the parser's stand-in for an escape, seen from the next key."""
    return (
        caret.key == CARET
        and following.key.startswith("ctrl+")
        and following.key not in LINE_BREAK_KEYS
        and in_burst(caret.time, following)
    )


def escape_key() -> events.Key:
    """The Escape key the parser turned into a "^"."""
    return events.Key("escape", "\x1b")
