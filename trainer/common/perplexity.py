"""Perplexity from a mean token loss, as training, `poetstudio eval` and the manifests report it."""

from __future__ import annotations

import math

# exp(50) is about 5e21: a loss above that means no fit at all, and the cap keeps exp finite.
MAX_LOSS = 50.0


def perplexity(loss: float) -> float:
    """exp of the mean token loss `loss` (natural log), capped so it never overflows."""
    return math.exp(min(loss, MAX_LOSS))
