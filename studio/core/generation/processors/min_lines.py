"""No ending before the minimum lines: eos is masked while the poem is shorter (a rule: it holds
even when the other masks leave nothing)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class MinLines(Processor):
    """Masks eos until the poem has `minimum` lines (the open one counts)."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if state.lines < self.minimum:
            scores[state.eos] = float("-inf")
        return scores


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule, or None when the minimum is 0."""
    return MinLines(plan.params.min_lines) if plan.params.min_lines else None
