"""One poem as decoding sees it: its tokens, text, lines and stanzas, and the line being written.

Every processor reads this; each keeps only its own small state beside it. The streaming loop and
batched writing both fill it, one token at a time (`push`), then its text (`feed`).

Counting: a "line" is a non-empty line (the first line is line one); two newlines in a row after a
line open a new stanza. `feed` asks the processors at each newline whether the poem ends there.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from studio.core.generation.processors.base import Processor


class PoemState:
    """What the processors read about the poem being decoded."""

    def __init__(self, prompt: Sequence[int], exempt: torch.Tensor, eos: int) -> None:
        self.prompt = list(prompt)
        # The tokens the repetition rules see: the first line's and the generated ones, not bos.
        self.history: list[int] = self.prompt[1:]
        self.generated: list[int] = []
        self.exempt = exempt  # bool over the vocabulary: tokens no repetition rule may punish
        self.eos = eos
        self.text = ""  # every character kept so far, the first line included
        self.line = ""  # the text of the open line
        self.done_lines = 0  # non-empty lines closed by a newline
        self.stanzas = 1
        self.newlines = 0  # newlines in a row since the last visible character
        self.rows: torch.Tensor | None = None  # this step's scores, [rows, vocab]
        self.relax = 0  # how far this step's preferences are relaxed (chain.py's `relax`)
        # A word written again (line_tries.py): (its position in `generated`, first tokens not to
        # begin it with again), for processors/word_again.py.
        self.avoid: tuple[int, frozenset[int]] | None = None

    @property
    def open_line(self) -> bool:
        """Whether the open line has visible text."""
        return bool(self.line.strip())

    @property
    def lines(self) -> int:
        """Non-empty lines so far, the open one included."""
        return self.done_lines + (1 if self.open_line else 0)

    @property
    def words(self) -> list[str]:
        """The finished words of the open line (a word still being spelled is not one yet)."""
        words = self.line.split()
        if words and not self.line[-1].isspace():
            words.pop()
        return words

    def copy(self) -> PoemState:
        """A copy that later tokens and text leave as it is (a line's start, to go back to)."""
        twin = copy.copy(self)
        twin.history, twin.generated = list(self.history), list(self.generated)
        return twin

    def push(self, token: int) -> None:
        """Record a generated token (never eos: that ends the poem)."""
        self.history.append(token)
        self.generated.append(token)

    def feed(self, text: str, processors: Sequence[Processor] = ()) -> tuple[int, str | None]:
        """Take `text`; return how much of it to keep, and the stop reason if a processor ended
        the poem at one of its newlines (the text from that newline on is dropped)."""
        for index, ch in enumerate(text):
            if ch == "\n":
                self.newlines += 1
                closed = self.open_line
                if closed:
                    self.done_lines += 1
                self.line = ""
                opens_stanza = self.newlines == 2 and self.done_lines > 0
                for processor in processors:
                    reason = processor.at_newline(self, closed, opens_stanza)
                    if reason:
                        self.text += text[:index]
                        return index, reason
                if opens_stanza:
                    self.stanzas += 1
            else:
                self.line += ch
                if not ch.isspace():
                    self.newlines = 0
        self.text += text
        return len(text), None
