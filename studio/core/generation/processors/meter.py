"""The meter, a soft aim: a word that would start off the line's beat loses METER_PENALTY from its
score, so the model still may choose it when nothing on the beat reads well.

The beat comes from the words written so far on the line (studio/core/formtokens.py's
`meter_positions`, where secondary stress counts as either beat); once the line has broken the
meter, nothing is penalised until the next line. Only lines with a syllable count take a meter.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from studio.core.formtokens import form_position, line_state, meter_mask, meter_positions
from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import mask_tensor, token_table
from trainer.common.form import METERS

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState
    from trainer.common.form import Form

# Logit cut for an off-beat word start. On iambic sonnets from the bundled joy model a cut of 3
# lifted lines that scan from about 60% to about 80% (benchmarks/probe_form_decode.py
# --meter-penalty 3); a hard mask left too few words to make sense with.
METER_PENALTY = 3.0


class MeterAim(Processor):
    """Penalises word starts that break the form's meter."""

    def __init__(self, form: Form, table: TokenTable, cycle: str) -> None:
        self.form = form
        self.table = table
        self.cycle = cycle

    def warm(self) -> None:
        """Every mask a line can ask for: one per set of beats a word may start on, at a word's
        start or inside one. Each reads every token's stresses: built at the first sonnet's
        first token, they held it up by most of a second (`benchmarks/profile_form_step.py
        --first [--prepared]`)."""
        beats = range(len(self.cycle))
        for size in range(1, len(beats) + 1):
            for positions in itertools.combinations(beats, size):
                for boundary in (True, False):
                    meter_mask(self.table, frozenset(positions), self.cycle, boundary)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        position = form_position(state.text, self.form)
        if position.finished or position.break_due or position.line.syllables is None:
            return scores
        beats = meter_positions(position.text, self.cycle)
        if not beats:
            return scores
        boundary = not line_state(position.text).partial
        keeps = mask_tensor(meter_mask(self.table, beats, self.cycle, boundary), scores.device)
        return scores - METER_PENALTY * (~keeps).to(scores.dtype)


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The meter aim of a form with a meter and syllable counts; None otherwise."""
    form = plan.form
    if form is None or form.meter is None or not form.syllables:
        return None
    return MeterAim(form, token_table(plan.model), METERS[form.meter])
