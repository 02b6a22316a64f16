"""The stanza limit: the poem ends before the blank line that would open one stanza too many."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor
from studio.core.generation.stats import STOP_MAX_STANZAS

if TYPE_CHECKING:
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class MaxStanzas(Processor):
    """Ends the poem where stanza `limit + 1` would begin."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        return STOP_MAX_STANZAS if opens_stanza and state.stanzas >= self.limit else None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The limit of the poem's settings."""
    return MaxStanzas(plan.params.max_stanzas)
