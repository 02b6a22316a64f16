"""The repetition penalty: tokens the poem already used score lower (CTRL's penalty: positive
scores divided, negative ones multiplied). Tokens without a letter or digit are exempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class RepetitionPenalty(Processor):
    """Penalises every token seen in the first line or the poem so far."""

    def __init__(self, penalty: float, state: PoemState) -> None:
        import torch

        self.penalty = penalty
        self.seen = torch.zeros(state.exempt.shape[0], dtype=torch.bool, device=state.exempt.device)
        if state.history:
            self.seen[torch.tensor(state.history, device=self.seen.device)] = True
        self.seen &= ~state.exempt

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        import torch

        punished = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return torch.where(self.seen, punished, scores)

    def observe(self, state: PoemState, token: int) -> None:
        if not bool(state.exempt[token]):
            self.seen[token] = True


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The penalty, or None when it is 1 (off)."""
    penalty = plan.params.repetition_penalty
    return None if penalty == 1.0 else RepetitionPenalty(penalty, state)
