"""This session's poems, in order, with a cursor to page back and forth through them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionPoem:
    """One poem written in this session, and everything needed to save or regenerate it."""

    emotion: str  # the emotion, or a blend's canonical spec such as `joy=0.70+sadness=0.30`
    first_line: str
    seed: int
    sampling: dict[str, Any]
    text: str = ""
    model: str = ""
    runtime: str = ""  # what decoded it (backend, dtype, processor), once done
    title: str = ""
    finished: bool = False
    stop_reason: str = ""
    notice: str = ""
    saved_to: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    # The guidance strength the core applied (0 when it fell back); None until the poem is done.
    applied_strength: float | None = None

    @property
    def strength(self) -> float:
        """The strength the poem was written with: as applied once known, else as asked."""
        if self.applied_strength is not None:
            return self.applied_strength
        return float(self.sampling.get("strength", 0.0))


class History:
    """The list of poems and the index of the one on screen."""

    def __init__(self) -> None:
        self._poems: list[SessionPoem] = []
        self._index = -1

    def __len__(self) -> int:
        return len(self._poems)

    @property
    def index(self) -> int:
        """Position of the poem on screen (0-based), or -1 when there is none."""
        return self._index

    @property
    def current(self) -> SessionPoem | None:
        """The poem on screen, if any."""
        return self._poems[self._index] if self._poems else None

    def add(self, poem: SessionPoem) -> SessionPoem:
        """Append `poem` and move the cursor to it."""
        self._poems.append(poem)
        self._index = len(self._poems) - 1
        return poem

    def remove(self, poem: SessionPoem) -> None:
        """Drop `poem` (a request that failed before writing anything) and show the newest."""
        self._poems = [p for p in self._poems if p is not poem]
        self._index = len(self._poems) - 1

    def move(self, delta: int) -> SessionPoem | None:
        """Move the cursor by `delta`, clamped to the list; return the poem there."""
        if not self._poems:
            return None
        self._index = max(0, min(len(self._poems) - 1, self._index + delta))
        return self.current
