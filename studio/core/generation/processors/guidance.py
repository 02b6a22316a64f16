"""Emotion guidance and blends: one score per token from the rows of several models.

Each step scores the next token from the emotion model's log-probabilities lp_E and the neutral
model's lp_N on the same context, as `lp_E + s * (lp_E - lp_N)` (DExperts' `base + alpha *
(expert - anti-expert)` with alpha = s + 1); a blend of emotions E_i with weights w_i scores
`lp_N + (1 + s) * sum_i w_i * (lp_E_i - lp_N)`. The choice is restricted to the neutral model's
top-p 0.9 nucleus plus each emotion model's own top token: the neutral model keeps the verse
plausible while the difference pushes it toward the emotion. s = 0 with one emotion is plain
sampling of the emotion model, token for token (this processor is then left out).

Only the tokens that can be chosen are scored: the nucleus is found first (sorting only the
tokens probable enough to be in it), then the guided score is computed for those candidates
alone; every other token is -inf. The full scores are computed only when the chain relaxes the
nucleus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor
from studio.core.generation.vectors import at_least, row_argmax

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# The neutral model's nucleus that guided choices must stay inside.
GUIDANCE_NUCLEUS = 0.9
# Tokens at least this probable are sorted first: at most 1/NUCLEUS_FLOOR of them, and they
# nearly always hold the nucleus's mass (where they do not, a flat step, a lower bound follows).
NUCLEUS_FLOOR = 1e-4


def nucleus_tokens(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The smallest set of most likely tokens whose probability mass reaches `top_p`: their
    indices, most likely first.

    Exact, sorting few tokens: the tokens at or above a probability floor come first in the
    sorted order, so when their running mass reaches `top_p` the nucleus lies among them. Else
    the floor drops to (1 - top_p) / vocab, below which no nucleus token can be: the tokens from
    the nucleus's last one on hold more than 1 - top_p, and none is more probable than it. Only
    float rounding can leave the mass short of `top_p` there; the whole vocabulary is sorted then.
    A floor whose tokens plainly hold too little is passed over unsorted, and the tokens above a
    floor are found through NumPy (vectors.py). On real guided steps here, on one thread: 290 us
    a step on average (nuclei of 1 to 2,000 tokens), against 380 us before those two shortcuts
    and about 5 ms for a full sort of a 49k vocabulary.
    """
    import torch

    for floor in (NUCLEUS_FLOOR, (1.0 - top_p) / probs.shape[0]):
        head = at_least(probs, floor)
        if not head.numel() or float(probs[head].sum()) < top_p * (1 - 1e-4):
            continue  # plainly too little mass above this floor: its running mass falls short
        top, order = torch.sort(probs[head], descending=True)
        running = torch.cumsum(top, dim=-1)
        if float(running[-1]) >= top_p:
            return head[order[running - top < top_p]]
    top, order = torch.sort(probs, descending=True)
    return order[torch.cumsum(top, dim=-1) - top < top_p]


def nucleus_mask(logprobs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The nucleus of `logprobs` (see `nucleus_tokens`) as a bool mask over the vocabulary."""
    import torch

    mask = torch.zeros_like(logprobs, dtype=torch.bool)
    mask[nucleus_tokens(logprobs.exp(), top_p)] = True
    return mask


def _candidates(experts: torch.Tensor, neutral_lp: torch.Tensor, nucleus: float) -> torch.Tensor:
    """The tokens guidance lets be chosen: the neutral nucleus and each emotion's top token."""
    import torch

    inside = nucleus_tokens(neutral_lp.exp(), nucleus)
    return torch.unique(torch.cat([inside, row_argmax(experts).to(inside.device)]))


def _combine(
    experts: torch.Tensor, logprobs: torch.Tensor, w: torch.Tensor, strength: float
) -> torch.Tensor:
    """The guided scores from the emotion rows' logits and every row's log-probabilities
    (columns: the tokens scored); the same arithmetic whichever columns are given."""
    k = experts.shape[0]
    return (w * experts).sum(0) + strength * (w * (logprobs[:k] - logprobs[k])).sum(0)


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
    if strength == 0:
        return (w * experts).sum(0), None
    logprobs = torch.log_softmax(logits[: k + 1].float(), dim=-1)
    allowed = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
    allowed[_candidates(experts, logprobs[k], nucleus)] = True
    return _combine(experts, logprobs, w, strength), allowed


def candidate_scores(
    logits: torch.Tensor,
    weights: Sequence[float],
    strength: float,
    nucleus: float = GUIDANCE_NUCLEUS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens guidance lets be chosen and their guided scores, for `strength` > 0.

    Equal, token for token, to `guided_scores` on its allowed tokens: the same log-probabilities
    and the same elementwise arithmetic, on those columns only.
    """
    import torch

    k = len(weights)
    experts = logits[:k].float()
    logprobs = torch.log_softmax(logits[: k + 1].float(), dim=-1)
    tokens = _candidates(experts, logprobs[k], nucleus)
    w = torch.tensor(list(weights), dtype=experts.dtype, device=experts.device)[:, None]
    return tokens, _combine(experts[:, tokens], logprobs[:, tokens], w, strength)


class Guidance(Processor):
    """Replaces the scores with the guided (or blended) scores of the step's rows, and keeps the
    choice inside the neutral nucleus unless relaxed."""

    yields_first = True

    def __init__(self, weights: Sequence[float], strength: float) -> None:
        self.weights = tuple(weights)
        self.strength = strength

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        import torch

        assert state.rows is not None
        if self.strength == 0 or relaxed:
            return guided_scores(state.rows, self.weights, self.strength)[0]
        tokens, chosen = candidate_scores(state.rows, self.weights, self.strength)
        guided = torch.full_like(scores, float("-inf"))
        guided[tokens] = chosen
        return guided


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """Guidance for a blend or a strength above 0; None for one emotion sampled plainly."""
    if len(plan.weights) == 1 and plan.strength == 0:
        return None
    return Guidance(plan.weights, plan.strength)
