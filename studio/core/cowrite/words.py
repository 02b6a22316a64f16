"""The words a writer steers a line with (use, rhyme with, topic), checked before decoding.

A steering word is one word of letters (an apostrophe or hyphen inside is fine): empty text,
several words or text without letters is a one-line error naming the field. A rhyme word missing
from the CMU dictionary still works, by spelling; `rhyme_notice` says so.
"""

from __future__ import annotations

import re

from trainer.common import phonetics
from trainer.common.errors import PoetstudioError

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


def check_word(field: str, text: str | None) -> str | None:
    """`text` as a steering word (lowercase), None when not given; a one-line error when it is
    empty, several words, or has no letters. `field` names it in the error (e.g. --use)."""
    if text is None:
        return None
    word = text.strip()
    if not word:
        raise PoetstudioError(f"{field} needs a word; it was empty")
    if len(word.split()) > 1:
        raise PoetstudioError(f"{field} takes one word, not {len(word.split())}: {word!r}")
    if not any(ch.isalpha() for ch in word):
        raise PoetstudioError(f"{field} needs a word with letters, not {word!r}")
    if not _WORD.fullmatch(word):
        raise PoetstudioError(f"{field} takes a word of letters only, not {word!r}")
    return phonetics.normalize(word.replace("\u2019", "'"))


def rhyme_notice(word: str) -> str | None:
    """What to tell the writer when `word`'s rhyme is not known from the CMU dictionary."""
    if phonetics.is_known(word):
        return None
    if phonetics.rhyme_parts(word):
        return f"{word!r} is not in the CMU dictionary; rhyming on the sound of its ending"
    return f"{word!r} is not in the CMU dictionary; rhyming by spelling"
