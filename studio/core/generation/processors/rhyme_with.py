"""A word the line must rhyme with (co-writing's "rhyme with"), through the form's rhyme machinery.

The line is steered as processors/rhyme.py steers a rhymed line whose group's first line ended on
the word, with all its rules: the rhyme comes where the model ranks one high enough, is forced
when the line would end without one (never right after punctuation), closes the line once whole;
no sentence closes before it; a slant rhyme where the word has no perfect one ("window /
snow"), never an echo ("night / knight"), never a function word ("the"). It reads the line being
written as the second line of a two-line rhyming form after a line that is the word alone, so
rhyme.py stays the one place that knows how. The line's syllable count, where the poem's form
gives one, bounds the rhyme word too.

A word that is not in the CMU dictionary and borrows no known ending rhymes by spelling: the
words that end in its last vowel and what follows (studio/core/cowrite/words.py says so).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from studio.core.formtokens import form_position
from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.rhyme import (
    RhymeTarget,
)
from studio.core.generation.vocabulary import encoder, token_table
from trainer.common import phonetics
from trainer.common.form import parse_form

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

_LAST_VOWEL = re.compile(r"[aeiouy]+[^aeiouy]*$")


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
        form = parse_form("free", rhyme="AA", syllables=span)
        # Asked for a rhyme, the writer gets a perfect one wherever there is one ("letter /
        # better"); the candidates to choose from stand in for the form's slant rhymes.
        super().__init__(form, table, encode, rhymes_with, slant_below=1)
        self.word = word

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        return super().rescore(_LineView(self.word, state.line), scores, relaxed)  # type: ignore[arg-type]

    def observe(self, state: PoemState, token: int) -> None:
        super().observe(_LineView(self.word, state.line), token)  # type: ignore[arg-type]

    def missed(self, state: PoemState) -> bool:
        return False  # candidates are kept as they come

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
