"""Showing user and model text exactly as typed: never markup, and no raw control characters."""

from __future__ import annotations

from rich.text import Text

# C0 control characters and DEL shown as their Unicode "control picture" (U+2400 block), so a stray
# escape sequence is visible instead of being sent to the terminal.
_PICTURES = {code: chr(0x2400 + code) for code in range(0x20) if code != 0x0A}
_PICTURES[0x7F] = "\u2421"


def visible(text: str) -> str:
    """`text` with every control character except newline replaced by its visible picture."""
    return text.translate(_PICTURES)


def literal(text: str, style: str = "") -> Text:
    """A Rich Text of `text` that is displayed literally: brackets stay brackets."""
    return Text(visible(text), style=style)


def as_markup(text: str) -> str:
    """`text` as Textual markup that shows it exactly (for places that read their text as
    markup, such as the command palette): every "[" is escaped, which also keeps "$" literal."""
    return visible(text).replace("[", "\\[")
