"""Line tries: a formed line that reads forced is written again from its start.

A form corners lines: the rhyme must come by the tenth word, the syllables must fit, so now and
then the masks leave the model only words it all but refuses, and the line reads wrecked ("a
consol heard", "with hate and rage; good,"). Such a line holds a token the poem's emotion model
(its first row, before any processor) gives a log-probability below FORCED_LOGPROB. Read on
bundled quatrains, the wrecked lines' least likely tokens sat at -12.9 to -23.3 nats and the
lines that read well at -3.4 to -9.9 (`benchmarks/bench_line_tries.py --lines`).

A line can also read forced at its end: its last word and the marks and break after it, together,
below ENDING_LOGPROB. A rhyme taken where the model ranked it high enough still closes the line at
once, and where the line would have gone on it reads cut off ("who mourn vain.", "the tears all!",
"a very high."): read on 20 bundled quatrains written with one try, the endings that read cut off
summed -11.1 to -19.6 nats, most of those that read well -6.8 to -11.0 (`benchmarks/
bench_line_tries.py --form quatrain --n 5 --emotions joy sadness fear anger --line-tries 1
--lines`).

A line that breaks its form, its rhyme or count having yielded to the other rules ("harm /
repaid"), is written again as a forced one is. A forced line is written again, from the same start
with the next draws of the poem's seed, up to `line_tries` times in all; the first try that is
neither forced nor broken is kept at once, and when every try is, the best: one that keeps its
form before one that does not, then the one nearest to reading well, by its least likely token or
its ending. A line that must rhyme with an earlier one ends on a word the rhyme mask chose; when
only its ending reads forced, its first rewrite goes back to that word, not the line's start, and
the word may not come back (the poem's state carries it as `avoid`): another rhyme may close the
line well, at a few tokens where a line is ten. Read on 64 bundled quatrain lines (`benchmarks/
bench_line_tries.py --form quatrain --n 4 --emotions joy sadness fear anger`), the cut-off endings
stayed as rare (14 against 18) with 370 tokens discarded against 530; a haiku's line, cut at its
count mid-phrase, mends no better with another last word (13 cut off against 4), so its lines are
written again from their start. A line is shown once it is kept, so a formed poem streams line by
line. Free verse, co-writing's candidates and greedy decoding (which would write the same line
again) keep every line as it comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.core.generation.state import PoemState
    from studio.core.generation.text import Detokenizer

# A token the model gives less than e^-10 (1 in 22,000) marks its line as forced,
FORCED_LOGPROB = -10.0
# and so does a last word that, with what closes the line after it, the model gives less than e^-11.
ENDING_LOGPROB = -11.0


@dataclass
class Saved:
    """A poem's decoding at one point, to go back to (decode.py saves and loads these)."""

    fed: int  # the positions of the poem's rows that stay valid (the KV cache to keep)
    state: PoemState
    detok: Detokenizer
    processors: list[dict[str, Any]]  # each processor's snapshot, in the chain's order
    held: str  # the text not shown yet
    tokens: int  # the tokens kept so far
    worst: float = 0.0  # the line's least likely token, for a try's end
    ending: float = 0.0  # the log-probability of its last word and what closes the line after it
    missed: bool = False  # the try's line broke its form (a rhyme that yielded), for a try's end
    stop: str | None = None  # the stop reason the try ended the poem with, if it did


@dataclass
class LineScore:
    """What a line's tokens tell of how forced it reads, as they come."""

    worst: float = 0.0  # its least likely token
    ending: float = 0.0  # its last word's tokens and the tokens after them, summed

    def see(self, logprob: float, starts_word: bool) -> None:
        """A token of the line was chosen with this log-probability under the emotion model;
        `starts_word` when it begins a word."""
        self.worst = min(self.worst, logprob)
        self.ending = logprob if starts_word else self.ending + logprob


class LineTries:
    """The tries of the line being written: where it started, and each forced try's end."""

    def __init__(self, tries: int) -> None:
        self.tries = tries
        self.start: Saved | None = None
        self.word: Saved | None = None  # where the try's last word began (`word_begins`)
        self.ends: list[Saved] = []  # the forced tries so far
        self.score = LineScore()  # the try being written
        self.again: Saved | None = None  # where `close` said to write again from
        self.avoid: tuple[int, frozenset[int]] | None = None  # (position, first tokens) not to redo
        self.by_word = False  # whether the line's last word may be written again alone
        self.rewritten = 0  # lines written more than once

    def begin(self, start: Saved, by_word: bool = False) -> None:
        """A new line starts at `start`; `by_word` when its last word answers a rhyme, so that a try
        cut off there is first written again from that word (`word_begins` says where it began)."""
        self.start = start
        self.by_word = by_word
        self.word = None
        self.ends = []
        self.score = LineScore()
        self.avoid = None

    def word_begins(self, at: Saved) -> None:
        """The token about to be seen begins a word; `at` is the poem just before it."""
        at.worst = self.score.worst
        self.word = at

    def see(self, logprob: float, starts_word: bool) -> None:
        """A token of the try being written was chosen (`LineScore.see`)."""
        self.score.see(logprob, starts_word)

    def close(self, end: Saved) -> Saved | None:
        """The try being written ended at `end`: the state to go on from (`end`, or an earlier
        try's end), or None to write again from `again`: the line's start, or, where only the
        ending of a try from the line's start read forced, its last word's (then `avoid` holds
        that word's first token there)."""
        assert self.start is not None
        end.worst, end.ending = self.score.worst, self.score.ending
        if _margin(end) >= 0 and not end.missed:
            return end
        self.ends.append(end)
        if len(self.ends) == 1:
            self.rewritten += 1
        if len(self.ends) >= self.tries:
            return max(self.ends, key=lambda saved: (not saved.missed, _margin(saved)))
        word = self.word
        cut_off = not end.missed and end.worst >= FORCED_LOGPROB
        if word is None or not self.by_word or self.avoid is not None or not cut_off:
            self.again, self.word, self.avoid = self.start, None, None
            self.score = LineScore()
            return None
        position = len(word.state.generated)
        self.avoid = (position, frozenset({end.state.generated[position]}))
        self.again = word
        self.score = LineScore(worst=word.worst)
        return None


def _margin(end: Saved) -> float:
    """How far a try's line is from reading forced (below 0: it does), by its least likely token
    and by its ending, whichever is nearer."""
    return min(end.worst - FORCED_LOGPROB, end.ending - ENDING_LOGPROB)
