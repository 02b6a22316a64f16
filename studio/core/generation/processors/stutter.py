"""The stutter guard as a processor: no word right after itself, and each further use of a
content word costs more (studio/core/stutter.py has the rule and why). A preference that holds
when the guidance nucleus yields, so a nucleus of nothing but the repeated word still refuses it;
only when every preference is relaxed does it yield."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from studio.core.generation.processors.base import Processor
from studio.core.stutter import StutterGuard

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class Stutter(Processor):
    """One poem's stutter guard, fed every token the poem takes, the first line's included."""

    def __init__(self, guard: StutterGuard) -> None:
        self.guard = guard

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        return scores if relaxed else self.guard.adjust(scores)

    def observe(self, state: PoemState, token: int) -> None:
        self.guard.observe(token)

    def snapshot(self) -> dict[str, Any]:
        guard = self.guard
        return {"open": guard.open, "last": guard.last, "uses": Counter(guard.uses)}

    def restore(self, saved: dict[str, Any]) -> None:
        self.guard.open, self.guard.last = saved["open"], saved["last"]
        self.guard.uses = Counter(saved["uses"])


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The guard, unless the settings turn it off (eval does, to measure what it changes)."""
    if not plan.params.stutter_guard:
        return None
    return Stutter(StutterGuard(plan.model.tokenizer, state.history))
