"""One poem being decoded: its state, its processors and draw, its token budget and its stats.

The streaming loop (poet.py) and batched writing (studio/core/batch.py) both drive it:
`has_room`, then `choose` from the logits of the poem's rows, then `take` the token, until `done`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from studio.core.generation.chain import Chain
from studio.core.generation.draw import Draw
from studio.core.generation.processors import build_processors
from studio.core.generation.state import PoemState
from studio.core.generation.stats import STOP_CONTEXT, STOP_EOS, STOP_MAX_TOKENS
from studio.core.generation.text import Detokenizer, clean_output

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan


class PoemDecode:
    """One poem's decoding: what it has written, how the next token is chosen, when it stops."""

    def __init__(self, plan: PoemPlan, started: float) -> None:
        params = plan.params
        self.plan = plan
        self.stats = plan.stats
        self.started = started
        model = plan.model
        self.state = PoemState(plan.prompt, model.exempt, model.tokens.eos)
        self.chain = Chain(
            build_processors(plan, self.state),
            Draw(params, self.stats.seed or 0, model.exempt.device),
        )
        self.detok = Detokenizer(model.tokenizer)
        if plan.first_line:
            # The first line is line one; no limit ends a poem before it begins.
            self.state.feed(plan.first_line + "\n")
        self.max_tokens = min(params.max_new_tokens, plan.context - len(plan.prompt))
        self.first_at: float | None = None
        self.done = False

    def finish(self, reason: str) -> None:
        """End the poem with `reason` and fix its decoding rate."""
        stats = self.stats
        stats.stop_reason = reason
        self.done = True
        if self.first_at is not None and stats.tokens > 1:
            elapsed = max(time.perf_counter() - self.first_at, 1e-9)
            stats.tokens_per_s = (stats.tokens - 1) / elapsed

    def has_room(self) -> bool:
        """Whether another token may be written; ends the poem at its token limit if not."""
        if self.stats.tokens < self.max_tokens:
            return True
        full = self.stats.tokens < self.plan.params.max_new_tokens
        self.finish(STOP_CONTEXT if full else STOP_MAX_TOKENS)
        return False

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from this poem's rows of logits ([rows, vocab])."""
        token = self.chain.choose(self.state, logits)
        self.stats.tokens += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
            self.stats.ttft_s = self.first_at - self.started
        return token

    def take(self, token: int) -> str:
        """Add `token` to the poem; return the text it adds (possibly empty)."""
        if token == self.state.eos:
            self.finish(STOP_EOS)
            return ""
        self.state.push(token)
        text = clean_output(self.detok.push(token))
        keep, reason = self.state.feed(text, self.chain.processors) if text else (0, None)
        self.chain.observe(self.state, token)
        if reason:
            self.finish(reason)
        return text[:keep]
