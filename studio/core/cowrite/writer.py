"""The co-writer: K candidate next lines for a poem, streamed as K batched rows, on a kept cache.

    writer = CoWriter(poet, "joy", params, lines=["The lamps are out along the quay"])
    for update in writer.stream(3, Steer(use="lantern"), cancel):   # LineUpdate(row, text, done)
        ...
    writer.candidates            # [Candidate]: text, seed, tokens, logprob, ended
    writer.accept(c.text, c)     # c = writer.candidates[1]: the next run reads nothing
    writer.undo()                # takes the last line back (None, with a notice, at none)
    for update in writer.rewrite(2, 3): ...    # line 2 anew; candidates reranked by what follows
    for update in writer.finish(cancel): ...   # the rest of the poem, one row (text with newlines)

Each candidate is its own PoemDecode (studio/core/generation/decode.py): its own seed (the run's
seed + its row), processors and state, on the poem read so far; its rows (the emotion's, and
neutral's when guided) sit beside the other candidates' in one batch, one forward per token for
all K. A line ends at its newline (or the poem's end, or MAX_LINE_TOKENS). `cancel` is checked
before every token of every row, so a run stops within one token; the candidates keep the text
they had. The poem's cache (prefix.py) outlives a run: `accept` then costs the new line's tokens
alone, and the emotion, strength or blend changing re-reads the poem once.

Not thread-safe: one run at a time per writer; cancel from another thread with the Event.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from studio.core.blend import parse_blend
from studio.core.cowrite.candidate import (
    END_CANCELLED,
    END_NEWLINE,
    END_POEM,
    END_TOKENS,
    Candidate,
    LineUpdate,
)
from studio.core.cowrite.opening import LineOpening
from studio.core.cowrite.poemtext import fitted, poem_ids
from studio.core.cowrite.prefix import PrefixCache
from studio.core.formtokens import form_position
from studio.core.generation.decode import PoemDecode
from studio.core.generation.poet import fresh_seed
from studio.core.generation.settings import SEED_LIMIT, SamplingParams
from studio.core.generation.stats import STOP_CONTEXT, STOP_EOS, STOP_MAX_TOKENS
from studio.core.generation.steer import Steer
from studio.core.generation.text import clean_first_line
from studio.core.generation.vocabulary import token_table
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    import torch

    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.poet import Poet

MAX_CANDIDATES = 8
DEFAULT_CANDIDATES = 3
# A verse line rarely takes 30 tokens; past this a candidate ends where it stands.
MAX_LINE_TOKENS = 48


def check_count(count: int) -> int:
    """`count` candidates, or a one-line error when it is outside 1 to MAX_CANDIDATES."""
    if not 1 <= count <= MAX_CANDIDATES:
        raise PoetstudioError(f"candidates must be 1 to {MAX_CANDIDATES}, not {count}")
    return count


class CoWriter:
    """A poem being co-written with one emotion model: its lines, its cache, its candidates."""

    def __init__(
        self,
        poet: Poet,
        emotion: str,
        params: SamplingParams | None = None,
        lines: Sequence[str] = (),
    ) -> None:
        self.poet = poet
        self.emotion = emotion  # may change between runs (the cache then re-reads the poem)
        self.params = params or SamplingParams()  # may change between runs too
        self.lines: list[str] = list(lines)  # the poem so far; "" is a stanza break
        self.cache = PrefixCache()
        self.candidates: list[Candidate] = []  # the last run's, in row order (a rewrite: ranked)
        self.notices: list[str] = []  # the last run's notices (a poem cut to the context, ...)
        self.line_tokens = MAX_LINE_TOKENS
        self._planned: tuple[tuple[str, str], PoemPlan] | None = None
        self._newline: int | None = None  # the newline's token, where it is one
        # Accepted candidate lines as the model wrote them: (index, text) -> ids.
        self._spelled: dict[tuple[int, str], list[int]] = {}

    # The poem.

    def accept(self, text: str, candidate: Candidate | None = None) -> str:
        """Add a line to the poem (a candidate's, edited or typed); returns it as kept.

        Give the `candidate` it came from: when `text` is that candidate's line as it stands, the
        poem reads it as the candidate's own tokens, which the cache already holds, so the next
        run starts at once."""
        line = clean_first_line(text)
        if not line:
            raise PoetstudioError("an empty line cannot be accepted; write some words first")
        self.lines.append(line)
        if candidate is not None and self._whole(candidate) and candidate.text == line:
            plan = self._planned[1] if self._planned is not None else None
            if plan is not None and _spells(plan, candidate.tokens, line):
                self._spelled[(len(self.lines) - 1, line)] = list(candidate.tokens)
        return line

    def undo(self) -> str | None:
        """Take back the last line (and a stanza break before it); None, with a notice, when the
        poem has no line."""
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        if not self.lines:
            self.notices = ["nothing to take back: the poem has no line yet"]
            return None
        line = self.lines.pop()
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return line

    def prefill(self) -> int:
        """Read the poem into the cache now (e.g. right after `accept`); returns the tokens read
        (0 when the cache already held it)."""
        plan, kept = self._plan(self.lines, Steer())
        before = len(self.cache.reads)
        with self.poet.backend.decoding(plan.stats.cpu_threads):
            self.cache.read(self.poet.backend, plan.rows, poem_ids(plan.model, kept))
        return self.cache.reads[-1] if len(self.cache.reads) > before else 0

    # Runs.

    def stream(
        self,
        count: int = DEFAULT_CANDIDATES,
        steer: Steer | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[LineUpdate]:
        """Write `count` candidates for the next line, yielding every row's every token."""
        yield from self._run(self.lines, check_count(count), steer or Steer(), cancel, True)

    def write(self, count: int = DEFAULT_CANDIDATES, steer: Steer | None = None) -> list[Candidate]:
        """`stream` run to its end: the candidates."""
        for _ in self.stream(count, steer):
            pass
        return self.candidates

    def rewrite(
        self,
        number: int,
        count: int = DEFAULT_CANDIDATES,
        steer: Steer | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[LineUpdate]:
        """Write `count` candidates for line `number` (1-based, stanza breaks not counted) from
        the lines before it; once written, `candidates` are ranked by how likely the emotion
        model finds the lines after it given each (`Candidate.follow_logprob`)."""
        index = self.line_index(number)
        before, after = self.lines[:index], self.lines[index + 1 :]
        yield from self._run(before, check_count(count), steer or Steer(), cancel, True)
        if any(c.ended == END_CANCELLED for c in self.candidates) or not any(after):
            return
        from studio.core.cowrite.rerank import rerank

        self.candidates = rerank(self, before, after, self.candidates)

    def finish(self, cancel: threading.Event | None = None) -> Iterator[LineUpdate]:
        """Write the rest of the poem as one row (row 0; its text holds the new lines)."""
        yield from self._run(self.lines, 1, Steer(), cancel, False)

    def line_index(self, number: int) -> int:
        """The index in `lines` of line `number` (1-based, stanza breaks not counted)."""
        written = [i for i, line in enumerate(self.lines) if line]
        if not written:
            raise PoetstudioError("the poem has no line to rewrite")
        if not 1 <= number <= len(written):
            raise PoetstudioError(
                f"line {number} is not in the poem: it has lines 1 to {len(written)}"
            )
        return written[number - 1]

    # The decoding.

    def _plan(self, lines: Sequence[str], steer: Steer) -> tuple[PoemPlan, list[str]]:
        """The plan every candidate starts from, and the lines that fit the context."""
        base = self._base_plan()
        kept, notice = fitted(base.model, lines, room=self.line_tokens + 1)
        self.notices = [*base.stats.notices, *([notice] if notice else [])]
        if base.form is not None and form_position("\n".join(kept) + "\n", base.form).finished:
            count = base.form.line_count
            raise PoetstudioError(
                f"the poem already has the {count} lines of its form ({base.form.name}); "
                "choose another form, or rewrite a line"
            )
        text = "\n".join(kept)
        spelled = self._spelled if len(kept) == len(lines) else None  # indices hold when uncut
        plan = dataclasses.replace(
            base, prompt=poem_ids(base.model, kept, spelled), first_line=text, steer=steer
        )
        return plan, kept

    def _base_plan(self) -> PoemPlan:
        """The Poet's plan for this emotion and these settings, made once and reused while they
        stay the same (planning loads and activates every row's model: ~0.2 s on a 2-core CPU,
        more than a warm first token), with a fresh seed per run unless the settings fix one."""
        key = (self.emotion, repr(self.params))
        if self._planned is None or self._planned[0] != key:
            blend = parse_blend(self.emotion)
            plan = self.poet.plan(blend, self.poet.resolve(blend), "", self.params)
            self._planned = (key, plan)
        plan = self._planned[1]
        seed = self.params.seed if self.params.seed is not None else fresh_seed()
        stats = dataclasses.replace(plan.stats, seed=seed, notices=list(plan.stats.notices))
        return dataclasses.replace(plan, stats=stats)

    def reload(self) -> None:
        """Forget the loaded models' plan and the poem's cache (after a model was retrained or
        replaced): the next run loads and reads afresh."""
        self._planned = None
        self.cache.drop()

    def _decodes(
        self, plan: PoemPlan, count: int, started: float, start: int = 0
    ) -> list[PoemDecode]:
        """One PoemDecode per candidate from row `start` to `count` - 1, each with its own seed:
        the run's seed + its row."""
        first = plan.stats.seed or 0
        decodes = []
        for row in range(start, count):
            stats = dataclasses.replace(plan.stats, seed=(first + row) % SEED_LIMIT, notices=[])
            decode = PoemDecode(dataclasses.replace(plan, stats=stats), started)
            decode.chain.processors.append(LineOpening(token_table(plan.model)))
            decodes.append(decode)
        return decodes

    def _run(
        self,
        lines: Sequence[str],
        count: int,
        steer: Steer,
        cancel: threading.Event | None,
        one_line: bool,
    ) -> Iterator[LineUpdate]:
        import torch

        started = time.perf_counter()
        plan, _ = self._plan(lines, steer)
        newline = plan.model.tokenizer.encode("\n", add_special_tokens=False)
        self._newline = newline[0] if len(newline) == 1 else None
        # Row 0's decode first: the others' (their processors read the whole poem) are made
        # once row 0's first token is out, so it does not wait for them.
        decodes = self._decodes(plan, 1, started)
        first_seed = plan.stats.seed or 0
        self.candidates = [Candidate(row, (first_seed + row) % SEED_LIMIT) for row in range(count)]
        width = len(plan.rows)
        backend = self.poet.backend
        budget = self.line_tokens if one_line else plan.params.max_new_tokens
        with backend.decoding(plan.stats.cpu_threads):
            logits = self.cache.read(backend, plan.rows, plan.prompt)
            batch = None
            fed: set[int] = set()  # finished candidates whose last token has been fed
            held: dict[int, torch.Tensor] = {}  # the scores after a finished line, by row
            ok = hold = False
            try:
                while True:
                    for row in range(count):
                        if cancel is not None and cancel.is_set():
                            yield from self._cancelled()
                            ok = True
                            return
                        if row == len(decodes):
                            decodes.extend(self._decodes(plan, count, started, row))
                        if not self.candidates[row].done:
                            at = row * width if batch is not None else 0
                            yield self._step(
                                decodes[row], row, logits[at : at + width], budget, one_line
                            )
                    # A line that ended on its newline is fed that newline once more, so that
                    # its rows hold the whole line and the scores of the line after it: accepting
                    # it as it stands then costs no forward (`accept(text, candidate)`).
                    due = [
                        row
                        for row, c in enumerate(self.candidates)
                        if self._whole(c) and row not in fed and one_line
                    ]
                    if all(c.done for c in self.candidates) and not due:
                        ok, hold = True, one_line
                        return
                    if batch is None:
                        batch = self.cache.fork(count)
                    # Every row steps in lock-step; a finished one is fed its last token again
                    # (positions past its line, cut off when it is accepted).
                    column = [
                        c.tokens[-1] if c.tokens else plan.model.tokens.eos
                        for c in self.candidates
                        for _ in range(width)
                    ]
                    ids = torch.tensor(column, dtype=torch.long, device=logits.device)[:, None]
                    if cancel is not None and cancel.is_set():
                        yield from self._cancelled()
                        ok = True
                        return
                    newly = [row for row, c in enumerate(self.candidates) if c.done]
                    logits = batch.forward(ids)
                    for row in newly:
                        if row not in fed and self._whole(self.candidates[row]):
                            held[row] = logits[row * width : (row + 1) * width].clone()
                        fed.add(row)
            except GeneratorExit:
                ok = True  # the caller stopped reading: the cache is whole, the run just ends
                raise
            finally:
                if not ok:
                    self.cache.drop()  # a forward failed part-way: the cache may be damaged
                elif batch is not None and hold:
                    lines_held = {row: (self.candidates[row].tokens, held[row]) for row in held}
                    self.cache.hold(lines_held)
                elif batch is not None:
                    self.cache.settle(0)

    def _step(
        self, decode: PoemDecode, row: int, rows: torch.Tensor, budget: int, one_line: bool
    ) -> LineUpdate:
        """One token of candidate `row` from its rows' scores."""
        import torch

        candidate = self.candidates[row]
        if len(candidate.tokens) >= budget or not decode.has_room():
            candidate.ended = END_TOKENS
            return self._update(candidate)
        token = decode.choose(rows)
        candidate.logprob += float(torch.log_softmax(rows[0].float(), dim=-1)[token])
        candidate.tokens.append(token)
        text = decode.take(token)
        if one_line and "\n" in text:
            candidate.text += text[: text.index("\n")]
            candidate.ended = END_NEWLINE
        else:
            candidate.text += text
        if decode.done and candidate.ended is None:
            reason = decode.stats.stop_reason
            if reason == STOP_EOS:
                candidate.ended = END_POEM
                if one_line and self._newline is not None:
                    # Its rows are fed a newline in place of the poem's end: the line is whole
                    # and may be accepted as it stands (the writer decides where a poem ends).
                    candidate.tokens[-1] = self._newline
            elif reason in (STOP_MAX_TOKENS, STOP_CONTEXT):
                candidate.ended = END_TOKENS
            else:  # a line rule ended the poem at this line's newline
                candidate.ended = END_NEWLINE if one_line else END_POEM
        return self._update(candidate)

    def _whole(self, candidate: Candidate) -> bool:
        """Whether a candidate's tokens are its whole line and a newline (its rows can be held)."""
        if candidate.ended == END_NEWLINE:
            return True
        return candidate.ended == END_POEM and candidate.tokens[-1:] == [self._newline]

    def _update(self, candidate: Candidate) -> LineUpdate:
        text = candidate.text.strip() if candidate.done else candidate.text.lstrip()
        if candidate.done:
            candidate.text = text
        return LineUpdate(candidate.row, text, candidate.done)

    def _cancelled(self) -> Iterator[LineUpdate]:
        """End every unfinished candidate where it stands."""
        for candidate in self.candidates:
            if not candidate.done:
                candidate.ended = END_CANCELLED
                yield self._update(candidate)


def _spells(plan: PoemPlan, tokens: list[int], line: str) -> bool:
    """Whether `tokens` read as exactly `line` and its newline."""
    decoded = plan.model.tokenizer.decode(tokens, skip_special_tokens=False)
    return bool(decoded == line + "\n")
