"""A line's last word written again does not come back the same.

Line tries (line_tries.py) write a line that reads cut off again from its last word; the model
often ranks that word far above the rest, so the next draw would bring it back. The poem's state
then names the position and the first tokens tried there (`PoemState.avoid`), and this processor
masks them at that position. A preference that yields first: where the other rules leave nothing
else (a rhyme with a single word left), the word comes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class WordAgain(Processor):
    """Masks the first tokens already tried for the word being written again."""

    yields_first = True

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        avoid = state.avoid
        if relaxed or avoid is None or avoid[0] != len(state.generated):
            return scores
        scores[list(avoid[1])] = float("-inf")
        return scores


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """Only formed poems write a word again."""
    return WordAgain() if plan.form is not None else None
