"""Steering one line: words the writer asks of the line being written, as co-writing sends them.

Each field drives one processor (processors/use_word.py, rhyme_with.py, topic.py); the default
`Steer()` asks nothing, so every other poem decodes as before. The words arrive checked
(studio/core/cowrite/words.py): one word of letters, lowercase.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Steer:
    """What the line being written must or should do."""

    use: str | None = None  # a word the line must use
    rhyme_with: str | None = None  # a word the line's last word must rhyme with
    topic: str | None = None  # a word the line is pulled toward (softly)

    @property
    def is_empty(self) -> bool:
        """Whether nothing is asked."""
        return self.use is None and self.rhyme_with is None and self.topic is None
