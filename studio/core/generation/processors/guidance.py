"""Emotion guidance and blends: one score per token from the rows of several models.

Each step scores the next token from the emotion model's log-probabilities lp_E and the neutral
model's lp_N on the same context, as `lp_E + s * (lp_E - lp_N)` (DExperts' `base + alpha *
(expert - anti-expert)` with alpha = s + 1); a blend of emotions E_i with weights w_i scores
`lp_N + (1 + s) * sum_i w_i * (lp_E_i - lp_N)`. The choice is restricted to the neutral model's
top-p 0.9 nucleus plus each emotion model's own top token: the neutral model keeps the verse
plausible while the difference pushes it toward the emotion. s = 0 with one emotion is plain
sampling of the emotion model, token for token (this processor is then left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# The neutral model's nucleus that guided choices must stay inside.
GUIDANCE_NUCLEUS = 0.9


def nucleus_mask(logprobs: torch.Tensor, top_p: float, head: int = 4096) -> torch.Tensor:
    """The smallest set of tokens whose probability mass reaches `top_p`, as a bool mask.

    The `head` most likely tokens nearly always hold that mass; on this CPU a full sort of a 49k
    vocabulary took about 5 ms a token, a top-4096 about 0.2 ms (a top-512 missed the mass at a
    third of the steps of a real poem: the neutral model is flat where a line begins).
    """
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


def guided_scores(
    logits: torch.Tensor,
    weights: Sequence[float],
    strength: float,
    nucleus: float = GUIDANCE_NUCLEUS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Next-token scores and the allowed-token mask (None: all) from a batch of model rows.

    `logits` is [rows, vocab]: one row per emotion of the blend (with `weights`), then, when
    `strength` > 0, the neutral model's row. The scores are the weighted emotion logits plus
    `strength * sum_i w_i (lp_E_i - lp_N)`: up to a constant, the module docstring's formula, on
    the logit scale the repetition penalty was made for.
    """
    import torch

    k = len(weights)
    experts = logits[:k].float()
    if k == 1 and strength == 0:
        return experts[0], None
    w = torch.tensor(list(weights), dtype=experts.dtype, device=experts.device)[:, None]
    mixed = (w * experts).sum(0)
    if strength == 0:
        return mixed, None
    logprobs = torch.log_softmax(logits[: k + 1].float(), dim=-1)
    neutral_lp = logprobs[k]
    scores = mixed + strength * (w * (logprobs[:k] - neutral_lp)).sum(0)
    allowed = nucleus_mask(neutral_lp, nucleus)
    allowed[experts.argmax(dim=-1)] = True
    return scores, allowed


class Guidance(Processor):
    """Replaces the scores with the guided (or blended) scores of the step's rows, and keeps the
    choice inside the neutral nucleus unless relaxed."""

    yields_first = True

    def __init__(self, weights: Sequence[float], strength: float) -> None:
        self.weights = tuple(weights)
        self.strength = strength

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        assert state.rows is not None
        guided, allowed = guided_scores(state.rows, self.weights, self.strength)
        if allowed is not None and not relaxed:
            return guided.masked_fill(~allowed, float("-inf"))
        return guided


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """Guidance for a blend or a strength above 0; None for one emotion sampled plainly."""
    if len(plan.weights) == 1 and plan.strength == 0:
        return None
    return Guidance(plan.weights, plan.strength)
