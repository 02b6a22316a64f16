"""How one poem is decoded, fixed before its first token: the models of its rows, the guidance,
the prompt, the settings and the stats it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats

if TYPE_CHECKING:
    from studio.core.generation.backends.base import Model


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
    params: SamplingParams
    stats: GenerationStats
