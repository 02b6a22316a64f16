"""The syllable budget of each line: a word may start only if it fits the syllables left, the line
may end only once some reading of it meets its count, and must end when nothing more fits
(studio/core/formtokens.py's `budget_mask`). A line that must stop does not stop mid-phrase: a
word that leaves a phrase open ("of", "the", "with": `formtokens.DANGLING`) may not fill its last
syllables, and the one punctuation mark after its last word closes (no dash, no quote that
opens: "in a-", "from '"). A preference: relaxed, it yields, and the line misses its count (line
tries write it again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.formtokens import Kind, budget_mask, budget_step, form_position, line_state
from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import count_tensor, kinds_mask, mask_tensor, token_table

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState
    from trainer.common.form import Form


class SyllableBudget(Processor):
    """Keeps each line within its form's syllable count."""

    def __init__(self, form: Form, table: TokenTable) -> None:
        self.form = form
        self.table = table

    def warm(self) -> None:
        """The mask at the start of each line's count (its first build reads every token's
        syllables)."""
        for line in self.form.lines():
            if line.syllables is not None:
                start = budget_step(line_state(""), line.syllables, line.ends_stanza)
                budget_mask(self.table, start)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed:
            return scores
        position = form_position(state.text, self.form)
        target = position.line.syllables
        if position.finished or position.break_due or target is None:
            return scores
        step = budget_step(line_state(position.text), target, position.line.ends_stanza)
        allowed = mask_tensor(budget_mask(self.table, step), scores.device)
        table, device = self.table, scores.device
        if step.room > 0:
            fills = count_tensor(table.syllables, device) == step.room
            dangling = mask_tensor(table.dangling, device)
            if not step.at_boundary:  # a piece goes on the word being written ("Ros" + "a")
                dangling = dangling & kinds_mask(table, (Kind.WORD,), device)
            allowed = allowed & ~(fills & dangling)
        if step.must_end:
            closers = mask_tensor(table.closers, device)
            allowed = allowed & (closers | ~kinds_mask(table, (Kind.PUNCT,), device))
        return scores.masked_fill(~allowed, float("-inf"))

    def missed(self, state: PoemState) -> bool:
        """Whether the line just closed has no reading that meets its count (the budget yielded
        when nothing else was left: "we the grey" for four syllables)."""
        position = form_position(state.text.rstrip("\n"), self.form)
        target = position.line.syllables
        if target is None or not position.text.strip():
            return False
        return not budget_step(line_state(position.text), target).can_end


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The budget of a form with syllable counts; None otherwise."""
    form = plan.form
    if form is None or not form.syllables:
        return None
    return SyllableBudget(form, token_table(plan.model))
