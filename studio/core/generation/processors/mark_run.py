"""No run of marks: verse punctuates, it does not rule lines of underscores.

The repetition rules spare tokens without a letter or digit, since verse repeats its commas and
line breaks on every line; so nothing stopped a poem from running into "Thus'_____..." for 200
tokens (a bundled model from nothing, seed 7). Here a line may hold at most MAX_RUN marks in a row
(characters that are neither letters, digits nor spaces: ",--\"" is four), and a token that is a
longer run by itself ("________") never comes. Line breaks are not marks and always may come.
A preference: relaxed, it yields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import mask_tensor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# The most marks in a row a line may hold; ",--\"" and "!'--" appear in the corpus's verse.
MAX_RUN = 4

# (tokenizer id, vocabulary size) -> (the tokenizer, kept so that its id is never reused; flags)
_FLAGS: dict[tuple[int, int], tuple[Any, tuple[tuple[bool, ...], tuple[bool, ...]]]] = {}


def is_mark(ch: str) -> bool:
    """Whether `ch` is a mark: not a letter, digit, space or line break."""
    return not (ch.isalnum() or ch.isspace())


def tail_run(text: str) -> int:
    """The marks in a row at the end of `text`."""
    run = 0
    for ch in reversed(text):
        if not is_mark(ch):
            break
        run += 1
    return run


def longest_run(text: str) -> int:
    """The most marks in a row anywhere in `text`."""
    longest = run = 0
    for ch in text:
        run = run + 1 if is_mark(ch) else 0
        longest = max(longest, run)
    return longest


def mark_flags(tokenizer: Any, exempt: torch.Tensor) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Per token id: (it adds marks and no line break, it is a run of more than MAX_RUN marks),
    read from the tokens without a letter or digit (`exempt`); built once per tokenizer."""
    size = int(exempt.shape[0])
    key = (id(tokenizer), size)
    cached = _FLAGS.get(key)
    if cached is None or cached[0] is not tokenizer:
        marks, long_runs = [False] * size, [False] * size
        for token_id in exempt.nonzero().flatten().tolist():
            text = str(tokenizer.decode([token_id], skip_special_tokens=True))
            if "\n" in text or not any(is_mark(ch) for ch in text):
                continue
            marks[token_id] = True
            long_runs[token_id] = longest_run(text) > MAX_RUN
        cached = _FLAGS[key] = (tokenizer, (tuple(marks), tuple(long_runs)))
    return cached[1]


class MarkRun(Processor):
    """Keeps runs of marks inside a line short."""

    def __init__(self, marks: tuple[bool, ...], long_runs: tuple[bool, ...]) -> None:
        self.marks = marks
        self.long_runs = long_runs

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if relaxed:
            return scores
        flags = self.marks if tail_run(state.line) >= MAX_RUN else self.long_runs
        return scores.masked_fill(mask_tensor(flags, scores.device), float("-inf"))


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The rule, for every poem."""
    return MarkRun(*mark_flags(plan.model.tokenizer, state.exempt.cpu()))
