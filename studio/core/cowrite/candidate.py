"""A candidate line and the updates that stream it.

While K candidates are written, each token of each row yields a `LineUpdate` (the row, the line
so far, whether it is finished); when the run ends, each row's `Candidate` holds its line, seed,
tokens and the model's log-probability of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Why a candidate line ended.
END_NEWLINE = "newline"  # the line closed with its newline
END_POEM = "poem end"  # the model ended the poem there
END_TOKENS = "tokens"  # the line ran out of tokens (MAX_LINE_TOKENS, or the context)
END_CANCELLED = "cancelled"  # the writer stopped the run; the line is as it stood


@dataclass(frozen=True)
class LineUpdate:
    """One step of one candidate row: its text so far and whether it is finished."""

    row: int
    text: str
    done: bool


@dataclass
class Candidate:
    """One candidate line."""

    row: int
    seed: int
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    logprob: float = 0.0  # the emotion model's log-probability of the tokens, newline included
    ended: str | None = None  # END_*, None while it streams
    follow_logprob: float | None = None  # for a rewrite: of the lines after it, given it

    @property
    def done(self) -> bool:
        """Whether the line is finished."""
        return self.ended is not None

    @property
    def mean_logprob(self) -> float | None:
        """The log-probability per token (None before the first token)."""
        return self.logprob / len(self.tokens) if self.tokens else None
