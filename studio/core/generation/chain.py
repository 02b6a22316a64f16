"""Choosing the next token: the step's rows through every processor in order, then the draw.

Should the masks leave no candidate at all, the processors run again with the weakest preferences
relaxed (those with `yields_first`: the neutral nucleus and the n-gram ban), then with every
preference relaxed (the form's too), so a defined token is always chosen; rules never relax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from studio.core.generation.draw import Draw
from studio.core.generation.processors.base import Processor
from studio.core.generation.vectors import all_finite, any_finite
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    import torch

    from studio.core.generation.state import PoemState


class Chain:
    """The processors of one poem and its draw."""

    def __init__(self, processors: Sequence[Processor], draw: Draw) -> None:
        self.processors = list(processors)
        self.draw = draw

    def scores(self, state: PoemState, rows: torch.Tensor, relax: int = 0) -> torch.Tensor:
        """The final scores of one step: the first row's, through every processor; `relax` 1
        relaxes the preferences that yield first, 2 every preference."""
        state.rows = rows
        state.relax = relax
        scores = rows[0].float().clone()
        for processor in self.processors:
            relaxed = relax >= 2 or (relax == 1 and processor.yields_first)
            scores = processor.rescore(state, scores, relaxed)
        return scores

    def choose(self, state: PoemState, rows: torch.Tensor) -> int:
        """The next token from this step's rows of scores ([rows, vocab], one per model)."""
        if not all_finite(rows):
            raise PoetstudioError(
                "the model produced non-finite scores (NaN or inf): its weights are damaged; "
                "retrain it or restore its folder"
            )
        scores = self.scores(state, rows)
        for relax in (1, 2):
            if any_finite(scores):
                break
            scores = self.scores(state, rows, relax)
        return self.draw(scores)

    def observe(self, state: PoemState, token: int) -> None:
        """Tell every processor the token chosen."""
        for processor in self.processors:
            processor.observe(state, token)
