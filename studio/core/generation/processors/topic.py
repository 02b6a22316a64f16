"""A topic word (co-writing's "topic"): a soft pull toward it, never forced.

At each step, while the line does not hold the word yet, the first token of its spelling (after a
space, or bare at the line's start) gets TOPIC_BONUS: the model takes it where it already fits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.use_word import spellings
from studio.core.generation.vocabulary import encoder, ids_mask
from trainer.common import phonetics

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# Added to the logit of the word's first token: e**2 makes it about 7 times likelier.
TOPIC_BONUS = 2.0


class Topic(Processor):
    """Pulls each line toward `word`."""

    def __init__(self, word: str, encode: Any) -> None:
        self.word = word
        mid, start = spellings(word, encode)
        self.mid = mid.step([])[0]
        self.start = start.step([])[0]

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        line = state.line
        if self.word in phonetics.words_of(line):
            return scores
        starts = self.mid if line.strip() else self.start
        if not starts:
            return scores
        bonus = ids_mask(starts, scores.shape[0], scores.device)
        return scores + bonus.to(scores.dtype) * TOPIC_BONUS


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The pull for a line given a topic; None otherwise."""
    word = plan.steer.topic
    if word is None:
        return None
    return Topic(word, encoder(plan.model))
