"""Text in and out of the engine: a first line made printable, model text made safe for a
terminal, and token ids turned into text as they stream."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Format characters that text needs: the joiners hold emoji sequences (and some scripts' letters)
# together, and tag characters spell subdivision flags. Every other format character goes: bidi
# overrides and isolates could reorder what a terminal shows. (Variation selectors are marks, Mn.)
_KEPT_FORMAT = frozenset("\u200c\u200d") | frozenset(map(chr, range(0xE0020, 0xE0080)))


def _shown(ch: str) -> bool:
    """Whether a non-whitespace character may reach a terminal or a poems file."""
    category = unicodedata.category(ch)
    return category != "Cc" and (category != "Cf" or ch in _KEPT_FORMAT)


def clean_first_line(text: str) -> str:
    """A poem's first line as one printable line: whitespace runs become one space, controls go."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif _shown(ch):
            out.append(ch)
    return " ".join("".join(out).split())


def clean_output(text: str) -> str:
    """Model text without control characters other than newline (they could drive a terminal)."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch == "\n" else " " if ch == "\t" else ch for ch in text if ch in "\n\t" or _shown(ch)
    )


class Detokenizer:
    """Turns a growing list of token ids into new text, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def copy(self) -> Detokenizer:
        """A copy that later tokens leave as it is."""
        twin = Detokenizer(self.tokenizer)
        twin.ids, twin.prefix, twin.read = list(self.ids), self.prefix, self.read
        return twin

    def push(self, token_id: int) -> str:
        """Add a token and return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        # transformers types decode without overloads; one sequence decodes to a str.
        decode: Callable[..., str] = self.tokenizer.decode  # type: ignore[assignment]
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""
