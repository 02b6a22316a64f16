"""A word the line must use (co-writing's "use"): placed where the model finds it fits, forced as a
last resort, never tacked on after the sentence closed, and spelled whole once begun.

Until the line holds the word, the first token of its spelling (" lantern", or "Lantern" at the
line's start; the tokenizer's own spelling, studio/core/formtokens.py's `RhymeTrie`) gets a bonus
at every step that grows with the words written, so the model may take it where it fits; and it
comes for certain at the first word start where the model ranks it among its FIT_RANK likeliest
tokens (a bound that widens with every word written), or right after a determiner ("the",
"my", ...; these get a growing bonus meanwhile): a noun reads well after "the", not after "the
sea". Until then the line may neither end (no break) nor close a sentence (no ".", "!", "?", ";"
or ":"), so the word is never tacked on after a full stop ("gate. chapel"); past
FORCE_AFTER_WORDS words it is forced at the next word start. A word forced right after
punctuation ("the gate, chapel") does not end the line: the model goes on after it. Once begun,
the word is spelled to its end and not extended ("lanterns" would not count). A preference:
relaxed, it yields.
"""

from __future__ import annotations

import functools
import re
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
# The word comes at the first word start where it ranks among the model's FIT_RANK likeliest
# tokens, a bound FIT_GROWTH times wider for each word written.
FIT_RANK = 50
FIT_GROWTH = 1.6
FORCE_AFTER_WORDS = 9
# A noun reads naturally after one of these: the word comes right after one, and they get
# DETERMINER_BONUS for each word written while the line waits for the word.
DETERMINERS = ("the", "a", "an", "my", "his", "her", "their", "our", "your", "its", "this", "that")
DETERMINER_BONUS = 0.5
# Tokens after which the line (or the poem) is over.
_ENDS = (Kind.NEWLINE, Kind.STANZA, Kind.SPECIAL)
# Marks that close a sentence; the word must not come right after one.
SENTENCE_ENDS = ".!?;:"
# The letters (and apostrophes) a line ends in.
_TRAILING_WORD = re.compile(r"(?:[^\W\d_]|['’])+$")


def determiners_for(word: str) -> tuple[str, ...]:
    """The determiners that may stand before `word` ("an" before a vowel, "a" before the rest)."""
    wrong = "a" if word[:1] in "aeiou" else "an"
    return tuple(d for d in DETERMINERS if d != wrong)


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


@functools.lru_cache(maxsize=8)
def stop_flags(table: TokenTable) -> tuple[bool, ...]:
    """Per token: whether it holds a mark that closes a sentence."""
    return tuple(any(mark in text for mark in SENTENCE_ENDS) for text in table.texts)


def without_stops(table: TokenTable, scores: torch.Tensor) -> torch.Tensor:
    """`scores` with every token that would close a sentence masked."""
    return scores.masked_fill(mask_tensor(stop_flags(table), scores.device), float("-inf"))


def goes_on_spelling(table: TokenTable, word: str, scores: torch.Tensor) -> bool:
    """Whether the letters a line ends in (`word`) are inside a word still being spelled: no
    dictionary word yet, or one the model's likeliest next token goes on spelling ("consol" +
    "ation"), so that nothing forced may come after them yet ("a consol heard")."""
    return not phonetics.is_known(word) or table.kinds[int(scores.argmax())] is Kind.PIECE


def rank_of_best(scores: torch.Tensor, mask: torch.Tensor) -> int:
    """How many tokens score above the best of those in `mask` (0: it is the likeliest)."""
    best = scores.masked_fill(~mask, float("-inf")).max()
    return int((scores > best).sum())


class UseWord(Processor):
    """Makes every line written use `word`."""

    def __init__(self, word: str, table: TokenTable, encode: Any) -> None:
        self.word = word
        self.table = table
        self.mid, self.start = spellings(word, encode)
        self.trie: RhymeTrie | None = None  # the spelling being followed
        self.spelling: list[int] | None = None  # its tokens so far
        self.offered: frozenset[int] = frozenset()
        self.after_mark = False  # the word was begun right after punctuation
        self.determiners = determiners_for(word)
        # Their first tokens: mid-line (" the") and at the line's start ("The").
        mid = {d: encode(" " + d)[:1] for d in self.determiners}
        start = {d: encode(d.capitalize())[:1] for d in self.determiners}
        self.determiner_ids = (
            frozenset(i for ids in mid.values() for i in ids),
            frozenset(i for ids in start.values() for i in ids),
        )

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
                scores = scores.masked_fill(
                    kinds_mask(self.table, (Kind.PIECE,), scores.device), float("-inf")
                )
                if self.after_mark:  # begun right after punctuation: the line goes on
                    marks = kinds_mask(self.table, (Kind.PUNCT,), scores.device)
                    scores = without_breaks(self.table, scores.masked_fill(marks, float("-inf")))
                return scores
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
        line_words = phonetics.words_of(line)
        words = len(line_words)
        # The word the line ends in, if it ends in letters: none where the letters are outside
        # the dictionary's alphabet ("é").
        match = _TRAILING_WORD.search(line)
        trailing = phonetics.words_of(match.group()) if match else []
        last = trailing[-1] if trailing else ""
        # Forcing now would cut a word short ("precip apple"): the line ends in letters that
        # are no known word, or the model would go on spelling them.
        mid_word = line[-1:].isalpha() and goes_on_spelling(self.table, last, scores)
        last_mark = line.rstrip()[-1:]
        closed = last_mark in SENTENCE_ENDS and bool(last_mark)
        after_determiner = bool(last) and last in self.determiners
        fits = after_determiner or rank_of_best(scores, mask) < FIT_RANK * FIT_GROWTH**words
        late = words >= FORCE_AFTER_WORDS + (3 if closed else 0)
        if not mid_word and ((fits and not closed) or late):
            self.after_mark = bool(last_mark) and not last_mark.isalnum()
            return scores.masked_fill(~mask, float("-inf"))
        bonus = mask.to(scores.dtype) * (BASE_BONUS + PER_WORD_BONUS * words)
        if not mid_word:  # a determiner, then the word
            pull = self.determiner_ids[0 if line.strip() else 1]
            leads = ids_mask(pull, scores.shape[0], scores.device)
            bonus = bonus + leads.to(scores.dtype) * (DETERMINER_BONUS * words)
        # Nor may the line end, or close a sentence, before the word came.
        return without_stops(self.table, without_breaks(self.table, scores + bonus))

    def observe(self, state: PoemState, token: int) -> None:
        if token in self.offered:
            self.spelling = [*(self.spelling or []), token]
        else:
            self.spelling = None

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        self.spelling = None
        self.after_mark = False
        return None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule for a line asked to use a word; None otherwise."""
    word = plan.steer.use
    if word is None:
        return None
    return UseWord(word, token_table(plan.model), encoder(plan.model))
