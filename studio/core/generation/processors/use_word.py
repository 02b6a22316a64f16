"""A word the line must use (co-writing's "use"): pulled in softly as the line goes, forced as a
last resort, and spelled whole once begun.

Until the line holds the word, the first token of its spelling (" lantern", or "Lantern" at the
line's start; the tokenizer's own spelling, studio/core/formtokens.py's `RhymeTrie`) gets a bonus
at every step that grows with the words written, so the model may take it where it fits. When the
line would end without it (a break or the end of the poem would win) or has FORCE_AFTER_WORDS
words, only that first token may come; no break may end the line before the word came. Once
begun, the word is spelled to its end and not extended ("lanterns" would not count). A
preference: relaxed, it yields.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from studio.core.formtokens import Kind, RhymeTrie
from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import (
    encoder,
    ids_mask,
    kinds_mask,
    mask_tensor,
    token_table,
)
from trainer.common import phonetics

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# The bonus of the word's first token: BASE at the line's start, + PER_WORD for each word written
# (the later in the line, the likelier the model must take it soon).
BASE_BONUS = 1.5
PER_WORD_BONUS = 1.0
FORCE_AFTER_WORDS = 7
# Tokens after which the line (or the poem) is over.
_ENDS = (Kind.NEWLINE, Kind.STANZA, Kind.SPECIAL)


def spellings(word: str, encode: Any) -> tuple[RhymeTrie, RhymeTrie]:
    """Tries over `word`'s tokenisations: lowercase after a space (mid-line), and bare,
    lowercase or capitalised, at the line's start."""
    starts = sorted({word, word.capitalize()})
    return RhymeTrie([word], encode, prefix=" "), RhymeTrie(starts, encode, prefix="")


@functools.lru_cache(maxsize=8)
def break_flags(table: TokenTable) -> tuple[bool, ...]:
    """Per token: whether it holds a line break or ends the poem."""
    kinds, texts = table.kinds, table.texts
    return tuple(k is Kind.SPECIAL or "\n" in t for k, t in zip(kinds, texts, strict=True))


def without_breaks(table: TokenTable, scores: torch.Tensor) -> torch.Tensor:
    """`scores` with every token that would end the line (or the poem) masked."""
    return scores.masked_fill(mask_tensor(break_flags(table), scores.device), float("-inf"))


def would_end(table: TokenTable, scores: torch.Tensor) -> bool:
    """Whether the likeliest token ends the line or the poem."""
    token = int(scores.argmax())
    return table.kinds[token] in _ENDS or "\n" in table.texts[token]


class UseWord(Processor):
    """Makes every line written use `word`."""

    def __init__(self, word: str, table: TokenTable, encode: Any) -> None:
        self.word = word
        self.table = table
        self.mid, self.start = spellings(word, encode)
        self.trie: RhymeTrie | None = None  # the spelling being followed
        self.spelling: list[int] | None = None  # its tokens so far
        self.offered: frozenset[int] = frozenset()

    def used(self, line: str) -> bool:
        """Whether `line` holds the word."""
        return self.word in phonetics.words_of(line)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        self.offered = frozenset()
        if relaxed:
            return scores
        if self.spelling is not None and self.trie is not None:
            allowed, whole = self.trie.step(self.spelling)
            if whole:  # the word is spelled: nothing may lengthen it
                return scores.masked_fill(
                    kinds_mask(self.table, (Kind.PIECE,), scores.device), float("-inf")
                )
            self.offered = frozenset(allowed)
            return scores.masked_fill(
                ~ids_mask(allowed, scores.shape[0], scores.device), float("-inf")
            )
        line = state.line
        if self.used(line):
            return scores
        self.trie = self.start if not line.strip() else self.mid
        starts, _ = self.trie.step([])
        if not starts:
            return scores  # the tokenizer cannot spell it
        self.offered = frozenset(starts)
        mask = ids_mask(starts, scores.shape[0], scores.device)
        words = len(phonetics.words_of(line))
        if words >= FORCE_AFTER_WORDS or (line.strip() and would_end(self.table, scores)):
            return scores.masked_fill(~mask, float("-inf"))
        bonus = BASE_BONUS + PER_WORD_BONUS * words
        # Nor may a sampled break end the line before the word came.
        return without_breaks(self.table, scores + mask.to(scores.dtype) * bonus)

    def observe(self, state: PoemState, token: int) -> None:
        if token in self.offered:
            self.spelling = [*(self.spelling or []), token]
        else:
            self.spelling = None

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        self.spelling = None
        return None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule for a line asked to use a word; None otherwise."""
    word = plan.steer.use
    if word is None:
        return None
    return UseWord(word, token_table(plan.model), encoder(plan.model))
