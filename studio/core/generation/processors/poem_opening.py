"""A poem written from nothing opens the way a verse line does, not mid-word or mid-sentence.

From bos alone the models may begin inside a word ("ay--the plaintive song"), inside a sentence
(" sorrows, mourn"), on punctuation (":||--") or on a line break: 12 of 40 bundled-model poems.
The corpus's lines begin with a capital letter (94% of them) or with an opening quote or bracket
and then a capital (4%: '"When', "'Tis", "(Ah"); lowercase (1.5%), dashes and dots share the
rest. So the poem's first token must print (as the detokeniser prints a poem's first token, which
drops SentencePiece's leading space but not byte-level BPE's) a capital letter first, or opening
marks only, and then the next token must go on with a capital straight away. A capital here is
A to Z, in a token with no digit or line break that is not a run of capitals (a heading's "THE",
a numeral's "XV").

Only for a poem with no first line (a typed one is the writer's), and only for its first token or
two: after that every step returns at once. A preference: relaxed, it yields, and the model opens
as it likes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from studio.core.generation.processors.base import Processor
from studio.core.generation.vocabulary import mask_tensor

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

# Marks a verse line opens with before its first word, as the corpus's lines do.
OPENING_MARKS = frozenset("\"'(`\u2018\u201c")

# (tokenizer id, vocabulary size) -> (the tokenizer, kept so that its id is never reused; flags)
_FIRST: dict[tuple[int, int], tuple[Any, tuple[bool, ...]]] = {}
# (tokenizer id, vocabulary size, the marks' token) -> (the tokenizer; flags)
_AFTER_MARKS: dict[tuple[int, int, int], tuple[Any, tuple[bool, ...]]] = {}


def capital_start(text: str) -> bool:
    """Whether `text` opens a line with a capital letter (A to Z), holds no digit or line break,
    and is not a run of capitals."""
    if not ("A" <= text[:1] <= "Z") or "\n" in text or any(ch.isdigit() for ch in text):
        return False
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) < 2 or not all(ch.isupper() for ch in letters)


def marks_only(text: str) -> bool:
    """Whether `text` is opening marks and nothing else."""
    return bool(text) and all(ch in OPENING_MARKS for ch in text)


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def first_flags(tokenizer: Any, size: int) -> tuple[bool, ...]:
    """Per token id below `size`: whether the token may open a poem (True). Decoded one token
    at a time, as the detokeniser decodes a poem's first token; built once per tokenizer."""
    key = (id(tokenizer), size)
    cached = _FIRST.get(key)
    if cached is None or cached[0] is not tokenizer:
        flags = [False] * size
        for token_id in tokenizer.get_vocab().values():
            if 0 <= token_id < size:
                text = _decode(tokenizer, [token_id])
                flags[token_id] = capital_start(text) or marks_only(text)
        cached = _FIRST[key] = (tokenizer, tuple(flags))
    return cached[1]


def after_marks_flags(tokenizer: Any, size: int, marks: int) -> tuple[bool, ...]:
    """Per token id below `size`: whether the token goes on with a capital straight after the
    opening marks of token `marks` (the text the pair decodes to past the marks); built once
    per tokenizer and marks, for the tokens that may open a poem alone (the candidates)."""
    key = (id(tokenizer), size, marks)
    cached = _AFTER_MARKS.get(key)
    if cached is None or cached[0] is not tokenizer:
        lead = _decode(tokenizer, [marks])
        flags = [False] * size
        for token_id, opens in enumerate(first_flags(tokenizer, size)):
            if opens:
                text = _decode(tokenizer, [marks, token_id])
                flags[token_id] = text.startswith(lead) and capital_start(text[len(lead) :])
        cached = _AFTER_MARKS[key] = (tokenizer, tuple(flags))
    return cached[1]


class PoemOpening(Processor):
    """Keeps the first token (and the one after opening marks) to those that open a line."""

    def __init__(self, tokenizer: Any, flags: tuple[bool, ...]) -> None:
        self.tokenizer = tokenizer
        self.size = len(flags)
        self.allowed: Sequence[bool] | None = flags  # None: the opening is written
        self.first = True

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        if self.allowed is None or relaxed:
            return scores
        return scores.masked_fill(~mask_tensor(self.allowed, scores.device), float("-inf"))

    def observe(self, state: PoemState, token: int) -> None:
        if self.allowed is None:
            return
        text = _decode(self.tokenizer, [token])
        if self.first and marks_only(text):
            self.allowed = after_marks_flags(self.tokenizer, self.size, token)
        else:
            self.allowed = None
        self.first = False


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """The opening of a poem with no first line; None when it has one, or when its vocabulary
    has no token that opens a line (a test's tokenizer of lowercase letters)."""
    if plan.first_line:
        return None
    tokenizer = plan.model.tokenizer
    flags = first_flags(tokenizer, int(plan.model.exempt.shape[0]))
    return PoemOpening(tokenizer, flags) if any(flags) else None
