"""How one poem is decoded, fixed before its first token: the models of its rows, the guidance,
the prompt, the settings and the stats it reports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats
from studio.core.generation.steer import Steer

if TYPE_CHECKING:
    from studio.core.generation.backends.base import Model
    from trainer.common.form import Form


@dataclass
class PoemPlan:
    """How one poem is decoded: the main model, every row, the guidance, the prompt, the stats."""

    model: Model  # its tokenizer, poem tokens and exempt table serve every row
    rows: list[Model]  # the blend's emotions in order, then neutral when guided
    weights: tuple[float, ...]
    strength: float  # as applied: 0 when guidance fell back
    context: int
    prompt: list[int]
    first_line: str  # the first line as it will be shown (cleaned, maybe truncated)
    params: SamplingParams  # as fitted to the form (`fitted_to_form`)
    stats: GenerationStats
    form: Form | None = None  # None for free verse
    steer: Steer = dataclasses.field(default_factory=Steer)  # co-writing's asks of the line


def fitted_to_form(params: SamplingParams, form: Form) -> SamplingParams:
    """The settings a form decodes with: a fixed form sets the lines and stanzas (no ending before
    its last line), and the token budget grows to fit it (200 tokens would cut a sonnet short)."""
    if form.is_free:
        return params
    budget = max(params.max_new_tokens, form.token_budget(params.max_lines))
    count = form.line_count
    if count is None:
        return dataclasses.replace(params, max_new_tokens=budget)
    stanzas = form.stanza_count or 1
    return dataclasses.replace(
        params, max_new_tokens=budget, max_lines=count, min_lines=count, max_stanzas=stanzas
    )
