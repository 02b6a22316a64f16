"""The repetition penalty: tokens the poem already used score lower (CTRL's penalty: positive
scores divided, negative ones multiplied). Tokens without a letter or digit are exempt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
        self.device = state.exempt.device
        # Only the seen tokens' scores change, so a step gathers those, not the whole
        # vocabulary (two torch.where over 49,152 scores took 190 us a token on one CPU thread).
        history = torch.tensor(state.history, dtype=torch.long, device=self.device)
        exempt = state.exempt[history].tolist() if state.history else []
        self.seen = {t for t, spared in zip(state.history, exempt, strict=True) if not spared}
        self._ids: torch.Tensor | None = None

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        import torch

        if not self.seen:
            return scores
        if self._ids is None:
            self._ids = torch.tensor(sorted(self.seen), dtype=torch.long, device=self.device)
        values = scores[self._ids]
        scores[self._ids] = torch.where(values > 0, values / self.penalty, values * self.penalty)
        return scores

    def snapshot(self) -> dict[str, Any]:
        return {"seen": set(self.seen), "_ids": self._ids}

    def restore(self, saved: dict[str, Any]) -> None:
        self.seen = set(saved["seen"])
        self._ids = saved["_ids"]

    def observe(self, state: PoemState, token: int) -> None:
        if token not in self.seen and not bool(state.exempt[token]):
            self.seen.add(token)
            self._ids = None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The penalty, or None when it is 1 (off)."""
    penalty = plan.params.repetition_penalty
    return None if penalty == 1.0 else RepetitionPenalty(penalty, state)
