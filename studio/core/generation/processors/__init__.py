"""The processors that shape each next token, in the order they run.

A new constraint is one module with a `build(plan, state) -> Processor | None` function (None:
not needed for this poem) and one line in `PROCESSORS`. Order matters where masks and rescoring
meet: guidance makes the scores from the step's rows, so it comes first; the repetition rules
(the token penalty, the stutter guard's word rules, the n-gram ban, no long run of marks) see
the guided scores, and so does the mask of a word written again (line tries), before the rhyme
reads which rhyme would win; a poem from nothing opens on a capital or an opening quote (the
opening) before the form's rules and co-writing's steering read what is left; the form's rules
(stanza breaks, syllables, the meter's soft cut, rhyme) mask or rescore what is left, the rhyme
last since it reads which token would win; co-writing's steering of one line (a topic's soft pull
before the rhyme, a word to use and a word to rhyme with after it, since they read which token
would win too) follows; then a fixed form's last line is kept from ending on a comma where the
rules before it leave it nothing but its end; the line limits come last. The draw (temperature,
top-k, top-p) follows the whole list (studio/core/generation/draw.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from studio.core.generation.processors import (
    form_breaks,
    guidance,
    last_line,
    mark_run,
    max_lines,
    max_stanzas,
    meter,
    min_lines,
    ngram,
    poem_opening,
    repetition,
    rhyme,
    rhyme_with,
    stutter,
    syllables,
    topic,
    use_word,
    word_again,
)
from studio.core.generation.processors.base import Processor

if TYPE_CHECKING:
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

Builder = Callable[["PoemPlan", "PoemState"], "Processor | None"]

PROCESSORS: list[Builder] = [
    guidance.build,
    repetition.build,
    stutter.build,
    ngram.build,
    mark_run.build,
    word_again.build,
    min_lines.build,
    poem_opening.build,
    form_breaks.build,
    syllables.build,
    meter.build,
    topic.build,
    rhyme.build,
    use_word.build,
    rhyme_with.build,
    last_line.build,
    max_lines.build,
    max_stanzas.build,
]


def build_processors(plan: PoemPlan, state: PoemState) -> list[Processor]:
    """The processors one poem needs, in `PROCESSORS` order."""
    built = (build(plan, state) for build in PROCESSORS)
    return [processor for processor in built if processor is not None]


__all__ = ["PROCESSORS", "Processor", "build_processors"]
