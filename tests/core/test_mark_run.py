"""No run of marks: a line holds at most MAX_RUN marks in a row, and no token is a longer run."""

from __future__ import annotations

import torch

from studio.core.generation.processors.mark_run import (
    MAX_RUN,
    MarkRun,
    mark_flags,
    tail_run,
)
from studio.core.generation.state import PoemState

TOKENS = ["<s>", "</s>", "\n", ",", "--", "_", "________", " the", "'", ".\n", " "]


class Tokenizer:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(TOKENS[i] for i in ids if not (skip_special_tokens and i < 2))


EXEMPT = torch.tensor([not any(ch.isalnum() for ch in token) for token in TOKENS])


def allowed(line: str, relaxed: bool = False) -> set[str]:
    state = PoemState([0], EXEMPT, 1)
    state.feed(line)
    rule = MarkRun(*mark_flags(Tokenizer(), EXEMPT))
    scores = rule.rescore(state, torch.zeros(len(TOKENS)), relaxed)
    return {TOKENS[i] for i in range(len(TOKENS)) if torch.isfinite(scores[i])}


def test_a_token_that_is_a_long_run_of_marks_never_comes() -> None:
    assert "________" not in allowed("Thus")
    assert {",", "--", "_", "'", "\n", ".\n", " the", " "} <= allowed("Thus")


def test_after_a_run_of_marks_a_line_goes_on_with_a_word_or_ends() -> None:
    assert tail_run("Thus'___") == MAX_RUN == 4
    assert allowed("Thus'___") == {"<s>", "</s>", "\n", ".\n", " the", " "}
    assert {"_", ","} <= allowed("Thus'__")  # three marks: one more may come
    assert "_" in allowed("sorrow,--\n")  # a new line starts its own count


def test_relaxed_it_yields() -> None:
    assert allowed("Thus'___", relaxed=True) == set(TOKENS)
