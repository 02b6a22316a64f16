"""Guidance's scoring as it was before it went candidates-first: the reference the new scoring is
tested against (tests/core/test_guidance_candidates.py) and timed against
(benchmarks/bench_guidance.py). Every token is scored, then masked to the neutral nucleus, which
comes from a top-4096 (or a full sort when those miss the mass)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from studio.core.generation.processors.base import Processor


def reference_nucleus(logprobs: Any, top_p: float, head: int = 4096) -> Any:
    """The nucleus mask as guidance computed it before: a top-`head`, else a full sort."""
    import torch

    probs = logprobs.exp()
    count = min(head, probs.shape[0])
    top, order = torch.topk(probs, count)
    if count < probs.shape[0] and float(top.sum()) < top_p:
        top, order = torch.sort(probs, descending=True)
    keep = torch.cumsum(top, dim=-1) - top < top_p
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[order[keep]] = True
    return mask


def reference_scores(logits: Any, weights: Sequence[float], strength: float) -> tuple[Any, Any]:
    """Every token's guided score and the allowed mask, as guidance computed them before."""
    import torch

    k = len(weights)
    experts = logits[:k].float()
    w = torch.tensor(list(weights), dtype=experts.dtype)[:, None]
    mixed = (w * experts).sum(0)
    logprobs = torch.log_softmax(logits[: k + 1].float(), dim=-1)
    scores = mixed + strength * (w * (logprobs[:k] - logprobs[k])).sum(0)
    allowed = reference_nucleus(logprobs[k], 0.9)
    allowed[experts.argmax(dim=-1)] = True
    return scores, allowed


class ReferenceGuidance(Processor):
    """The guidance step as it was before (strength > 0): every token scored, then masked."""

    yields_first = True

    def __init__(self, weights: Sequence[float], strength: float) -> None:
        self.weights = tuple(weights)
        self.strength = strength

    def rescore(self, state: Any, scores: Any, relaxed: bool) -> Any:
        guided, allowed = reference_scores(state.rows, self.weights, self.strength)
        return guided if relaxed else guided.masked_fill(~allowed, float("-inf"))
