"""The last line of a fixed form ends its sentence: "... and every air." rather than "air,".

A form with a fixed number of lines ends the poem at its last line's break, wherever the sentence
is. So on that line no break (nor the poem's end) may come before a full stop, "!" or "?"; and at
the point where the form lets the line do nothing but end (its rhyme word is whole, or its
syllables are spent: no new word may start), only such a mark may come (alone, or before the
break: ".\n"), not a comma, a dash, or a piece that stretches the last word. A preference:
should the rules before it allow none of those (the line already ends on a comma), it yields by
itself, so that the form's other rules hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.formtokens import Kind
from studio.core.generation.processors.base import Processor
from studio.core.generation.vectors import any_finite
from studio.core.generation.vocabulary import mask_tensor, per_table, token_table

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# What ends a sentence, and what may follow it at the end of a line (quotes, brackets).
ENDERS = frozenset(".!?")
AFTER_ENDER = frozenset("\"'\u2019\u201d)]")


def ends_sentence(text: str) -> bool:
    """Whether `text` ends on a full stop, "!" or "?", perhaps inside closing quotes."""
    tail = text.rstrip().rstrip("".join(AFTER_ENDER))
    return tail[-1:] in ENDERS


class LastLine(Processor):
    """Makes the form's last line end on a full stop, "!" or "?"."""

    def __init__(self, lines: int, table: TokenTable) -> None:
        self.lines = lines
        self._flags = per_table(table, "last line", _token_flags)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed or state.done_lines != self.lines - 1 or not state.open_line:
            return scores
        if ends_sentence(state.line):
            return scores
        words, enders, bare_breaks = self._flags
        if any_finite(scores[mask_tensor(words, scores.device)]):
            # Another word may come: the line goes on rather than break off mid-sentence.
            kept = scores.masked_fill(mask_tensor(bare_breaks, scores.device), float("-inf"))
            kept[state.eos] = float("-inf")
        else:
            kept = scores.masked_fill(~mask_tensor(enders, scores.device), float("-inf"))
        if any_finite(kept) or state.relax == 0:
            # Nothing left at first: the chain then lets the choice leave the neutral nucleus,
            # where the full stop guidance left out may be ("Beneath a starry," had ended a haiku).
            return kept
        # Still nothing: yield alone, not with every preference (the form's rules hold).
        return scores


def _token_flags(table: TokenTable) -> tuple[tuple[bool, ...], tuple[bool, ...], tuple[bool, ...]]:
    """Per token: (it starts a word, it ends a sentence: ".", "!" or "?" alone or before a
    break, not after a space ("who ."), it is a break without one)."""
    words, enders, bare_breaks = [], [], []
    for kind, text in zip(table.kinds, table.texts, strict=True):
        words.append(kind is Kind.WORD)
        ends = kind in (Kind.PUNCT, Kind.NEWLINE, Kind.STANZA)
        enders.append(ends and not text.startswith(" ") and ends_sentence(text.split("\n")[0]))
        bare_breaks.append(kind in (Kind.NEWLINE, Kind.STANZA) and not enders[-1])
    return tuple(words), tuple(enders), tuple(bare_breaks)


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule for a form with a fixed number of lines; None otherwise."""
    form = plan.form
    if form is None or form.line_count is None or form.line_count < 2:
        return None
    return LastLine(form.line_count, token_table(plan.model))
