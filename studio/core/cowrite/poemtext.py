"""The poem so far, as co-writing reads it: its lines from text or bytes, and its token ids.

Lines are kept as typed (made printable, one space between words); a blank line is a stanza
break, and runs of them count as one. The token ids are the poem's opening token, then each line
and its newline encoded one line at a time, so a poem that grows by a line grows its ids by that
line's ids alone (the cache of the rest stays valid; studio/core/cowrite/prefix.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from studio.core.generation.text import clean_first_line
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    from studio.core.generation.backends.base import Model


def poem_lines(text: str) -> list[str]:
    """The lines of `text`: cleaned, blank lines between stanzas kept as "" (one per break),
    none at the start or the end."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = clean_first_line(raw)
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def decode_poem(data: bytes, where: str) -> list[str]:
    """The lines of a poem read as bytes from `where` (a file name or stdin); a one-line error
    for binary data or a poem without a line."""
    if b"\x00" in data:
        raise PoetstudioError(f"{where} is binary, not a poem (it holds NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PoetstudioError(
            f"{where} is not UTF-8 text (a bad byte at offset {exc.start}); save it as UTF-8"
        ) from None
    lines = poem_lines(text)
    if not lines:
        raise PoetstudioError(f"{where} holds no poem: give at least one line")
    return lines


def line_ids(model: Model, line: str) -> list[int]:
    """One line's ids with its newline (a blank line: the newline alone)."""
    return list(_encoded(model.tokenizer, line + "\n"))


@functools.lru_cache(maxsize=4096)
def _encoded(tokenizer: Any, text: str) -> tuple[int, ...]:
    """`text`'s ids, kept: every run reads the whole poem's ids (to fit it to the context and to
    find what the cache lacks), and tokenizing each line anew took a tenth of a warm first
    token's time after accepting a line."""
    return tuple(tokenizer.encode(text, add_special_tokens=False))


def poem_ids(
    model: Model, lines: Sequence[str], spelled: Mapping[tuple[int, str], list[int]] | None = None
) -> list[int]:
    """The ids a model reads the poem as: the opening token, then each line and its newline.

    `spelled` gives the ids of some lines as the model wrote them ((index, text) -> ids, the
    newline included): an accepted candidate is read as its own tokens, which its rows hold."""
    ids = [model.tokens.bos]
    for index, line in enumerate(lines):
        own = spelled.get((index, line)) if spelled else None
        ids.extend(own if own is not None else line_ids(model, line))
    return ids


def fitted(model: Model, lines: Sequence[str], room: int) -> tuple[list[str], str | None]:
    """The last lines of the poem that leave `room` positions free in the model's context, and a
    notice when lines had to be left out."""
    kept = list(lines)
    while kept and len(poem_ids(model, kept)) > model.context - room:
        kept.pop(0)
        while kept and not kept[0]:
            kept.pop(0)
    if len(kept) == len(lines):
        return kept, None
    if not kept:
        raise PoetstudioError(
            f"the poem's last line alone is longer than the model's context "
            f"({model.context} tokens, {room} of them kept free to write the next line)"
        )
    shown = sum(1 for line in kept if line)
    total = sum(1 for line in lines if line)
    return kept, (
        f"the poem is longer than the model's context ({model.context} tokens); "
        f"the candidates read its last {shown} of {total} lines"
    )
