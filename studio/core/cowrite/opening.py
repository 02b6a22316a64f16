"""A candidate line opens with words: no line break or poem end before the line has text.

Co-writing asks for one line at a time; a break at its start would be an empty candidate. A
preference: should nothing else be left, it yields (the chain relaxes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.use_word import break_flags
from studio.core.generation.vocabulary import mask_tensor

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.state import PoemState


class LineOpening(Processor):
    """Masks breaks and the poem's end while the line being written is empty."""

    def __init__(self, table: TokenTable) -> None:
        self.flags = break_flags(table)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed or state.line.strip():
            return scores
        return scores.masked_fill(mask_tensor(self.flags, scores.device), float("-inf"))
