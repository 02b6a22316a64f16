"""Reranking rewrites: a candidate for line N is as good as the lines after it find it.

Each candidate is scored by the emotion model's log-likelihood of the lines that follow line N,
given the lines before it and the candidate: `log p(after | before, candidate)`. The lines before
are read once into a one-row cache (the emotion model alone, no guidance); each candidate is read
on it, then the following lines a token at a time, and the cache is cut back to the lines before.
The following lines are cut to what fits in the model's context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from studio.core.blend import parse_blend
from studio.core.cowrite.poemtext import line_ids, poem_ids

if TYPE_CHECKING:
    from studio.core.cowrite.candidate import Candidate
    from studio.core.cowrite.writer import CoWriter


def rerank(
    writer: CoWriter, before: Sequence[str], after: Sequence[str], candidates: list[Candidate]
) -> list[Candidate]:
    """`candidates` with `follow_logprob` set, best first (ties keep their order)."""
    import torch

    poet = writer.poet
    blend = parse_blend(writer.emotion)
    model = poet.backend.load(poet.resolve(blend)[blend.emotions.index(blend.primary)])
    context = poem_ids(model, before)
    following = [token for line in after for token in line_ids(model, line)]
    device = model.exempt.device
    with poet.backend.decoding(None):
        rows = poet.backend.rows([model])
        if len(context) > 1:
            rows.forward(torch.tensor([context[:-1]], dtype=torch.long, device=device))
        for candidate in candidates:
            rows.truncate(max(len(context) - 1, 0))
            own = [context[-1], *line_ids(model, candidate.text)]
            room = model.context - rows.length - len(own)
            follow = following[: max(room, 0)]
            logits = rows.forward(torch.tensor([own], dtype=torch.long, device=device))
            total = 0.0
            for index, token in enumerate(follow):
                total += float(torch.log_softmax(logits[0].float(), dim=-1)[token])
                if index + 1 < len(follow):
                    step = torch.tensor([[token]], dtype=torch.long, device=device)
                    logits = rows.forward(step)
            candidate.follow_logprob = total
    return sorted(candidates, key=lambda c: -(c.follow_logprob or 0.0))
