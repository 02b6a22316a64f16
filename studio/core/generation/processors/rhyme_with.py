"""A word the line must rhyme with (co-writing's "rhyme with"), through the form's rhyme machinery.

The line is steered as processors/rhyme.py steers a rhymed line whose group's first line ended on
the word: rhyming words' first tokens get a bonus once the line has a few words, a rhyme is forced
when the line would end without one, and a rhyme word once whole closes the line. Here a rhyme
also comes, after a whole word, as soon as the model ranks one high enough (FIT_RANK), so that
it stands where it fits rather than tacked on where the line would have ended. It reads the
line being written as the second line of a two-line rhyming form after a line that is the word
alone, so rhyme.py stays the one place that knows how. The line's syllable count, where the poem's
form gives one, bounds the rhyme word too.

A word that is not in the CMU dictionary and borrows no known ending rhymes by spelling: the
words that end in its last vowel and what follows (studio/core/cowrite/words.py says so).
No break may end the line before its last word rhymes (a sampled newline would end it unrhymed),
nor may a sentence close before it (the rhyme would be tacked on after a full stop: "misery;
handle"), unless the vocabulary spells no rhyme for the word at all.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from studio.core.formtokens import RhymeTrie, form_position
from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.rhyme import (
    MAX_RHYME_SYLLABLES,
    MIN_WORDS_BEFORE_RHYME,
    RhymeTarget,
)
from studio.core.generation.processors.use_word import rank_of_best, without_breaks, without_stops
from studio.core.generation.vocabulary import encoder, ids_mask, token_table
from trainer.common import phonetics
from trainer.common.form import parse_form

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

_LAST_VOWEL = re.compile(r"[aeiouy]+[^aeiouy]*$")
# The rhyme comes at the first word start where one ranks among the model's FIT_RANK likeliest
# tokens, a bound FIT_GROWTH times wider for each word written past MIN_WORDS_BEFORE_RHYME.
FIT_RANK = 25
FIT_GROWTH = 2.0


def spelled_ending(word: str) -> str:
    """The spelling a word rhymes by when its sound is unknown: its last vowels and what follows
    (at least two letters)."""
    match = _LAST_VOWEL.search(word)
    ending = match.group(0) if match else word
    return ending if len(ending) >= 2 else word[-2:]


def rhymes_with(candidate: str, target: str) -> bool:
    """Whether `candidate` rhymes with `target`: by CMU sound, or by spelling when the target has
    no known sound."""
    if phonetics.rhyme_parts(target):
        return phonetics.rhymes(candidate, target)
    word = phonetics.normalize(candidate)
    return word != target and word.endswith(spelled_ending(target))


class _LineView:
    """The line being written, as the second line of a couplet after the target word."""

    def __init__(self, word: str, line: str) -> None:
        self.text = f"{word}\n{line}"


class RhymeWith(RhymeTarget):
    """Ends each line written on a rhyme for `word`."""

    def __init__(
        self, word: str, syllables: tuple[int, int] | None, table: TokenTable, encode: Any
    ) -> None:
        span = None if syllables is None else f"{syllables[0]}-{syllables[1]}"
        super().__init__(parse_form("free", rhyme="AA", syllables=span), table, encode)
        self.word = word

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one processor per line, a few spans each
    def _trie(
        self, target: str | None, low: int, high: int, used: frozenset[str] = frozenset()
    ) -> RhymeTrie:
        fits = [
            word
            for word in self.endings
            if word not in used
            and rhymes_with(word, self.word)
            and phonetics.is_known(word)  # no fragments ("relig") that borrow a rhyme
            and any(low <= count <= high for count in phonetics.syllable_counts(word))
        ]
        return RhymeTrie(fits, self.encode)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        view = _LineView(self.word, state.line)
        rescored = super().rescore(view, scores, relaxed)  # type: ignore[arg-type]
        if relaxed or not self._reachable or self._rhymed(state.line):
            return rescored
        if self.spelling is None and self.offered and self._fits(state.line, scores):
            # Rhyme words are offered after a whole word: the rhyme comes now, where it fits,
            # rather than be forced where the model would end the line.
            offered = ids_mask(self.offered, scores.shape[0], scores.device)
            rescored = rescored.masked_fill(~offered, float("-inf"))
        # A sampled break must not end it unrhymed, nor a full stop leave the rhyme tacked on.
        return without_stops(self.table, without_breaks(self.table, rescored))

    def _fits(self, line: str, scores: torch.Tensor) -> bool:
        """Whether the likeliest offered rhyme ranks among the model's FIT_RANK likeliest
        tokens (a bound FIT_GROWTH times wider for each word past MIN_WORDS_BEFORE_RHYME),
        right after a word (not after punctuation, where it would read tacked on)."""
        if not line[-1:].isalpha():
            return False
        words = len(phonetics.words_of(line)) - MIN_WORDS_BEFORE_RHYME
        offered = ids_mask(self.offered, scores.shape[0], scores.device)
        return rank_of_best(scores, offered) < FIT_RANK * FIT_GROWTH ** max(words, 0)

    @functools.cached_property
    def _reachable(self) -> bool:
        """Whether the vocabulary spells any rhyme for the word (else the line just misses it,
        rather than run on to its token limit)."""
        return bool(self._trie(self.word, 1, MAX_RHYME_SYLLABLES))

    def _rhymed(self, line: str) -> bool:
        """Whether the line's last word, whole, rhymes with the word."""
        words = phonetics.words_of(line)
        if not words:
            return False
        whole = not (line[-1].isalpha() or line[-1] in "'\u2019") or phonetics.is_known(words[-1])
        return whole and rhymes_with(words[-1], self.word)

    def observe(self, state: PoemState, token: int) -> None:
        super().observe(_LineView(self.word, state.line), token)  # type: ignore[arg-type]

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        self.spelling = None  # each line starts its own rhyme word
        self.closed_at = None
        return None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule for a line asked to rhyme with a word; None otherwise."""
    word = plan.steer.rhyme_with
    if word is None:
        return None
    syllables = None
    if plan.form is not None:
        syllables = form_position(plan.first_line + "\n", plan.form).line.syllables
    return RhymeWith(word, syllables, token_table(plan.model), encoder(plan.model))
