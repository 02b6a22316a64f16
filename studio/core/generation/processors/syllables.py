"""The syllable budget of each line: a word may start only if it fits the syllables left, the line
may end only once some reading of it meets its count, and must end when nothing more fits
(studio/core/formtokens.py's `budget_mask`). A line that must stop does not stop mid-phrase: a
word that leaves a phrase open ("of", "the", "with": `formtokens.DANGLING`) may not fill its last
syllables, and the one punctuation mark after its last word closes (no dash, no quote that
opens: "in a-", "from '"). A preference: relaxed, it yields."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from studio.core.formtokens import Kind, budget_mask, budget_step, form_position, line_state
from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import mask_tensor, token_table

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

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed:
            return scores
        position = form_position(state.text, self.form)
        target = position.line.syllables
        if position.finished or position.break_due or target is None:
            return scores
        step = budget_step(line_state(position.text), target, position.line.ends_stanza)
        allowed = mask_tensor(budget_mask(self.table, step), scores.device)
        if step.room > 0:
            fills = self._syllables.to(scores.device) == step.room
            allowed = allowed & ~(fills & self._dangling.to(scores.device))
        if step.must_end:
            allowed = allowed & (self._closers.to(scores.device) | ~self._punct.to(scores.device))
        return scores.masked_fill(~allowed, float("-inf"))

    @functools.cached_property
    def _syllables(self) -> torch.Tensor:
        import torch

        return torch.tensor(self.table.syllables)

    @functools.cached_property
    def _dangling(self) -> torch.Tensor:
        import torch

        return torch.tensor(self.table.dangling)

    @functools.cached_property
    def _closers(self) -> torch.Tensor:
        import torch

        return torch.tensor(self.table.closers)

    @functools.cached_property
    def _punct(self) -> torch.Tensor:
        import torch

        return torch.tensor([kind is Kind.PUNCT for kind in self.table.kinds])


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The budget of a form with syllable counts; None otherwise."""
    form = plan.form
    if form is None or not form.syllables:
        return None
    return SyllableBudget(form, token_table(plan.model))
