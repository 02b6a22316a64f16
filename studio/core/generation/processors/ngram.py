"""The n-gram ban: no run of n tokens twice in a poem (tokens without a letter or digit exempt).
A preference: when it and the other masks leave nothing, the chain relaxes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class NgramBan(Processor):
    """Bans the tokens that would complete an n-gram the poem (first line included) already has."""

    yields_first = True

    def __init__(self, n: int, state: PoemState) -> None:
        self.n = n
        self.ngrams: dict[tuple[int, ...], set[int]] = {}
        for end in range(n, len(state.history) + 1):
            self._remember(state.history[end - n : end])

    def _remember(self, gram: list[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        import torch

        history, n = state.history, self.n
        if relaxed or len(history) < n - 1:
            return scores
        banned = self.ngrams.get(tuple(history[len(history) - (n - 1) :]))
        if banned:
            ids = [t for t in banned if not bool(state.exempt[t])]
            if ids:
                scores[torch.tensor(ids, device=scores.device)] = float("-inf")
        return scores

    def snapshot(self) -> dict[str, Any]:
        return {"ngrams": _copied(self.ngrams)}

    def restore(self, saved: dict[str, Any]) -> None:
        self.ngrams = _copied(saved["ngrams"])

    def observe(self, state: PoemState, token: int) -> None:
        if len(state.history) >= self.n:
            self._remember(state.history[-self.n :])


def _copied(ngrams: dict[tuple[int, ...], set[int]]) -> dict[tuple[int, ...], set[int]]:
    return {prefix: set(ends) for prefix, ends in ngrams.items()}


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The ban, or None when its size is 0 (off)."""
    n = plan.params.no_repeat_ngram_size
    return NgramBan(n, state) if n else None
