"""Guidance scores only the tokens that can be chosen: the same choice as scoring every token.

The reference (tests/helpers/guidance_reference.py) is the scoring guidance did before it went
candidates-first: a log-softmax of every row, the guided score of every token, and the neutral
nucleus from a top-4096 (or a full sort). The new path must give the same allowed tokens and, on
them, the same scores bit for bit: both take the same log-probabilities and do the same
elementwise arithmetic per token, and the nucleus's running mass is summed in the same order over
the same leading tokens.
"""

from __future__ import annotations

from typing import Any

import pytest

from studio.core.generation.processors.guidance import (
    NUCLEUS_FLOOR,
    Guidance,
    candidate_scores,
    guided_scores,
    nucleus_tokens,
)
from studio.core.generation.state import PoemState
from tests.helpers.guidance_reference import reference_scores

pytestmark = pytest.mark.numerics

VOCAB = 49_152  # the bundled base's vocabulary
# Logit spreads from peaked (a nucleus of a token or two) to flat (tens of thousands): the nucleus
# search finds the nucleus above its floor, and below it at the bound.
SPREADS = (8.0, 4.0, 3.0, 2.0, 0.3)


def random_rows(rows: int, spread: float, seed: int) -> Any:
    """`rows` rows of random logits; the last (neutral) row with the given spread."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, VOCAB, generator=generator) * 3.0
    logits[-1] = torch.randn(VOCAB, generator=generator) * spread
    return logits


@pytest.mark.parametrize("spread", SPREADS)
@pytest.mark.parametrize(("weights", "strength"), [((1.0,), 1.5), ((0.7, 0.3), 0.5)])
def test_candidate_scores_equal_the_full_scores_on_the_tokens_that_can_be_chosen(
    spread: float, weights: tuple[float, ...], strength: float
) -> None:
    import torch

    for seed in range(3):
        logits = random_rows(len(weights) + 1, spread, seed)
        full, allowed = reference_scores(logits, weights, strength)
        tokens, scores = candidate_scores(logits, weights, strength)
        assert torch.equal(torch.sort(tokens).values, torch.nonzero(allowed).flatten())
        assert torch.equal(scores, full[tokens])
        # The public full path agrees with the reference too (what a relaxed step uses).
        new_full, new_allowed = guided_scores(logits, weights, strength)
        assert new_allowed is not None and torch.equal(new_allowed, allowed)
        assert torch.equal(new_full, full)


@pytest.mark.parametrize("spread", SPREADS)
def test_the_guidance_step_hands_on_the_same_scores_as_masking_every_token(spread: float) -> None:
    import torch

    logits = random_rows(2, spread, seed=5)
    full, allowed = reference_scores(logits, (1.0,), 1.5)
    state = PoemState([0], torch.zeros(VOCAB, dtype=torch.bool), eos=0)
    state.rows = logits
    step = Guidance((1.0,), 1.5)
    blank = logits[0].clone()
    masked = full.masked_fill(~allowed, float("-inf"))
    assert torch.equal(step.rescore(state, blank, relaxed=False), masked)
    assert torch.equal(step.rescore(state, blank, relaxed=True), full)


def test_the_nucleus_search_takes_each_of_its_paths() -> None:
    """The spreads above reach the floor and the bound below it; probabilities whose mass falls
    short of top-p (as rounding could leave them) take the full sort, keeping every token."""
    import torch

    paths = set()
    for spread in SPREADS:
        probs = torch.softmax(random_rows(1, spread, seed=0)[0], -1)
        above = float(probs[probs >= NUCLEUS_FLOOR].sum()) >= 0.9
        paths.add("floor" if above else "bound")
    assert paths == {"floor", "bound"}
    short = torch.full((1000,), 0.5 / 1000)
    assert torch.equal(torch.sort(nucleus_tokens(short, 0.9)).values, torch.arange(1000))
