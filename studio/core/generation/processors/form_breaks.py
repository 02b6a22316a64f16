"""A fixed form's stanza layout: blank lines only where the form breaks a stanza, and one there;
each line opens with a word.

A line that ends its stanza may end with a blank-line token, or with a newline, after which only
a newline may come; no blank line opens anywhere else. (Line counts: processors/max_lines.py, set
from the form by plan.py.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.formtokens import Kind, form_position
from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import kinds_mask, token_table

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState
    from trainer.common.form import Form


class FormBreaks(Processor):
    """Masks line and stanza breaks the form does not have; a preference (relaxed, it yields)."""

    def __init__(self, form: Form, table: TokenTable) -> None:
        self.form = form
        self.table = table

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed:
            return scores
        position = form_position(state.text, self.form)
        if position.finished:
            return scores
        device = scores.device
        if position.break_due:
            newline = kinds_mask(self.table, (Kind.NEWLINE,), device)
            return scores.masked_fill(~newline, float("-inf"))
        banned = [Kind.STANZA] if not position.line.ends_stanza else []
        if not position.text.strip():
            # No empty line inside a stanza, and a line opens with a word, not ":||--".
            banned += [Kind.NEWLINE, Kind.STANZA, Kind.PUNCT, Kind.OTHER]
        if not banned:
            return scores
        return scores.masked_fill(kinds_mask(self.table, banned, device), float("-inf"))


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The layout of a form that fixes its lines; None otherwise."""
    form = plan.form
    if form is None or form.line_count is None:
        return None
    return FormBreaks(form, token_table(plan.model))
