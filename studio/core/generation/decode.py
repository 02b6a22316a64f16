"""One poem being decoded: its state, its processors and draw, its token budget and its stats.

The streaming loop (poet.py) and batched writing (studio/core/batch.py) both drive it:
`has_room`, then `choose` from the logits of the poem's rows, then `take` the token, until `done`,
then `release` what text is still held. A driver that can take its rows back (`rewinds`) lets a
formed poem write a forced line again (line_tries.py): after such a `take`, `rewound` says how many
positions of the rows stay, and the rows are fed `context()` from there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from studio.core.formtokens import Kind
from studio.core.generation.chain import Chain
from studio.core.generation.draw import Draw
from studio.core.generation.line_tries import LineTries, Saved
from studio.core.generation.processors import build_processors
from studio.core.generation.state import PoemState
from studio.core.generation.stats import STOP_CONTEXT, STOP_EOS, STOP_MAX_TOKENS
from studio.core.generation.text import Detokenizer, clean_output
from studio.core.generation.vocabulary import token_table

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.settings import SamplingParams


def writes_lines_again(params: SamplingParams, formed: bool) -> bool:
    """Whether a poem may write a forced line again (line_tries.py): a fixed form, sampled, with
    more than one try."""
    return formed and params.temperature > 0 and params.line_tries > 1


class PoemDecode:
    """One poem's decoding: what it has written, how the next token is chosen, when it stops."""

    def __init__(self, plan: PoemPlan, started: float, rewinds: bool = False) -> None:
        """`rewinds`: the driver can take the rows back, so a forced line may be written again."""
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
        retry = rewinds and writes_lines_again(params, plan.form is not None)
        self.tries = LineTries(params.line_tries) if retry else None
        # Which tokens begin a word: a try's ending is its last word on (line_tries.py).
        self.kinds = token_table(model).kinds if self.tries is not None else ()
        self.held = ""  # the open line's text, shown once the line is kept
        self.rewound: int | None = None  # set by `take` when the rows must go back
        self.drawn = 0  # tokens chosen, those of tries not kept included
        if self.tries is not None:
            self._begin_line()

    def warm(self) -> None:
        """Build the tables the processors will read, before the first token asks for them."""
        for processor in self.chain.processors:
            processor.warm()

    def finish(self, reason: str) -> None:
        """End the poem with `reason` and fix its decoding rate."""
        stats = self.stats
        stats.stop_reason = reason
        self.done = True
        stats.discarded_tokens = self.drawn - stats.tokens
        if self.tries is not None:
            stats.rewritten_lines = self.tries.rewritten
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
        # Saved before the choice, so that a word written again starts exactly here.
        before = self._save() if self.tries is not None and self.tries.by_word else None
        token = self.chain.choose(self.state, logits)
        if self.tries is not None:
            kind = self.kinds[token]
            starts_word = kind is Kind.WORD
            if starts_word and before is not None:
                self.tries.word_begins(before)
            # A stanza's blank line is the form's, not the line's: counted, a break the model
            # ranked low (-12.7) marked every try of the stanza's first line forced. (The
            # state holds the token only once it is taken.)
            blank = not self.state.open_line
            if not (blank and kind in (Kind.NEWLINE, Kind.STANZA)):
                self.tries.see(float(logits[0].float().log_softmax(-1)[token]), starts_word)
        self.stats.tokens += 1
        self.drawn += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
            self.stats.ttft_s = self.first_at - self.started
        return token

    def take(self, token: int) -> str:
        """Add `token` to the poem; return the text it adds to what is shown (possibly empty)."""
        self.rewound = None
        if token == self.state.eos:
            if self.tries is not None and self.state.open_line:
                return self._close_line(STOP_EOS)
            self.finish(STOP_EOS)
            return self.release()
        self.state.push(token)
        text = clean_output(self.detok.push(token))
        lines = self.state.done_lines
        keep, reason = self.state.feed(text, self.chain.processors) if text else (0, None)
        self.chain.observe(self.state, token)
        if self.tries is None:
            if reason:
                self.finish(reason)
            return text[:keep]
        self.held += text[:keep]
        if self.state.done_lines > lines:
            return self._close_line(reason)
        if reason:
            self.finish(reason)
        return ""

    def release(self) -> str:
        """The text held back (a line not yet kept), now shown as it is."""
        text, self.held = self.held, ""
        return text

    def context(self) -> list[int]:
        """Every token the rows are to have read, the one chosen last included."""
        return self.plan.prompt + self.state.generated

    def _close_line(self, stop: str | None) -> str:
        """A try of a line ended (ending the poem with `stop`, if given): keep it, go on from an
        earlier try, or write the line again."""
        assert self.tries is not None and self.tries.start is not None
        end = self._save()
        end.stop = stop
        end.missed = any(processor.missed(self.state) for processor in self.chain.processors)
        kept = self.tries.close(end)
        if kept is None or kept is not end:
            back = kept or self.tries.again
            assert back is not None
            self._load(back)
            # The try's own start or last word lie on the rows; an earlier try's end does not.
            self.rewound = back.fed if kept is None else self.tries.start.fed
            if kept is None:
                self.state.avoid = self.tries.avoid
                return ""
        text = self.release()
        self._begin_line()
        if kept.stop:
            self.finish(kept.stop)
        return text

    def _begin_line(self) -> None:
        """Line tries start a line here; its last word may be written again alone where it
        answers a rhyme."""
        assert self.tries is not None and self.plan.form is not None
        target = self.plan.form.line(self.state.done_lines)
        self.tries.begin(self._save(), by_word=target.rhymes_with is not None)

    def _save(self) -> Saved:
        return Saved(
            fed=len(self.context()) - 1 if self.state.generated else 0,
            state=self.state.copy(),
            detok=self.detok.copy(),
            processors=[processor.snapshot() for processor in self.chain.processors],
            held=self.held,
            tokens=self.stats.tokens,
        )

    def _load(self, saved: Saved) -> None:
        self.state = saved.state.copy()  # copied again: a line's start may be loaded twice
        self.detok = saved.detok.copy()
        for processor, snapshot in zip(self.chain.processors, saved.processors, strict=True):
            processor.restore(snapshot)
        self.held = saved.held
        self.stats.tokens = saved.tokens
