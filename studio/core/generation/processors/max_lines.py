"""The line limit: the poem ends at the newline that closes its last allowed line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.processors.base import Processor
from studio.core.generation.stats import STOP_MAX_LINES

if TYPE_CHECKING:
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState


class MaxLines(Processor):
    """Ends the poem once `limit` lines are closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        return STOP_MAX_LINES if closed_line and state.done_lines >= self.limit else None


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The limit of the poem's settings."""
    return MaxLines(plan.params.max_lines)
