"""Line tries: a formed line that reads forced is written again, from rows taken back exactly."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from studio.core.batch import PoemRequest, write_poems
from studio.core.blend import parse_blend
from studio.core.generation import line_tries
from studio.core.generation.backends.torch_peft import TorchBackend
from studio.core.generation.line_tries import LineTries, Saved
from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams


def saved() -> Saved:
    return Saved(fed=0, state=None, detok=None, processors=[], held="", tokens=0)  # type: ignore[arg-type]


def test_a_line_is_kept_at_once_unless_forced_and_then_the_least_forced_try_is_kept() -> None:
    tries = LineTries(3)
    tries.begin(saved())
    tries.see(-2.0, True)
    end = saved()
    assert tries.close(end) is end and tries.rewritten == 0
    tries.see(-12.0, True)
    assert tries.close(saved()) is None  # forced: written again
    tries.see(-11.0, True)
    second = saved()
    assert tries.close(second) is None
    tries.see(-30.0, True)
    assert tries.close(saved()) is second  # three tries, all forced: the likeliest worst token
    assert tries.rewritten == 1
    tries.begin(saved())
    tries.see(-12.0, True)
    assert tries.close(saved()) is None
    tries.see(-1.0, True)
    kept = saved()
    assert tries.close(kept) is kept and tries.rewritten == 2  # an unforced try ends the tries


def test_a_try_that_breaks_its_form_is_written_again_and_loses_to_one_that_keeps_it() -> None:
    tries = LineTries(3)
    tries.begin(saved())
    tries.see(-1.0, True)
    broken = saved()
    broken.missed = True  # likely tokens, but its rhyme yielded
    assert tries.close(broken) is None
    tries.see(-12.0, True)
    forced = saved()
    assert tries.close(forced) is None
    tries.see(-1.0, True)
    again = saved()
    again.missed = True
    assert tries.close(again) is forced  # every try failed: the one that keeps its form


def test_a_line_whose_last_word_and_close_the_model_all_but_refuses_reads_forced() -> None:
    tries = LineTries(2)
    tries.begin(saved())
    for logprob, starts_word in ((-6.0, True), (-5.0, True), (-4.0, False), (-3.0, False)):
        tries.see(logprob, starts_word)  # no token below -10, but " va" + "in" + "." + "\n": -12
    cut_off = saved()
    assert tries.close(cut_off) is None
    for logprob, starts_word in ((-9.0, True), (-0.5, False), (-1.0, True), (-2.0, False)):
        tries.see(logprob, starts_word)  # the rarer word earlier, the ending -3
    kept = saved()
    assert tries.close(kept) is kept and (kept.worst, kept.ending) == (-9.0, -3.0)


def at(generated: list[int], fed: int) -> Saved:
    state = SimpleNamespace(generated=generated)
    return Saved(fed=fed, state=state, detok=None, processors=[], held="", tokens=0)  # type: ignore[arg-type]


def test_a_rhymed_line_cut_off_at_its_end_is_written_again_from_its_last_word_once() -> None:
    tries = LineTries(4)
    start = at([5], 1)
    tries.begin(start, by_word=True)
    tries.see(-2.0, True)
    word = at([5, 6], 2)
    tries.word_begins(word)
    tries.see(-6.0, True)  # the rhyme the mask left, and the close: its ending reads cut off
    tries.see(-6.0, False)
    assert tries.close(at([5, 6, 7, 0], 4)) is None
    assert tries.again is word and tries.avoid == (2, frozenset({7}))
    assert tries.score.worst == -2.0  # the try goes on from the word, the line's tokens kept
    tries.see(-7.0, True)
    tries.see(-5.0, False)
    assert tries.close(at([5, 6, 8, 0], 4)) is None
    assert tries.again is start and tries.avoid is None  # cut off again: the whole line
    tries.see(-1.0, True)
    tries.word_begins(at([5, 9], 2))
    tries.see(-3.0, True)
    kept = at([5, 9, 10, 0], 4)
    assert tries.close(kept) is kept and tries.rewritten == 1


def test_a_line_forced_before_its_end_or_free_of_rhyme_is_written_again_from_its_start() -> None:
    for by_word, first in ((True, -12.0), (False, -2.0)):
        tries = LineTries(3)
        start = at([5], 1)
        tries.begin(start, by_word=by_word)
        tries.see(first, True)
        tries.word_begins(at([5, 6], 2))
        tries.see(-6.0, True)
        tries.see(-6.0, False)
        assert tries.close(at([5, 6, 7, 0], 4)) is None
        assert tries.again is start and tries.avoid is None


def test_a_word_written_again_does_not_begin_with_the_token_tried_there(poet: Poet) -> None:
    from studio.core.generation.decode import PoemDecode
    from studio.core.generation.processors.word_again import WordAgain

    plan = poet.plan(parse_blend("joy"), [poet.model_info("joy")], "the sea", formed(1))
    decode = PoemDecode(plan, 0.0)
    (again,) = [p for p in decode.chain.processors if isinstance(p, WordAgain)]
    state = decode.state
    scores = torch.zeros(8)
    state.avoid = (len(state.generated), frozenset({3, 5}))
    masked = again.rescore(state, scores.clone(), False)
    assert masked.isinf().nonzero().flatten().tolist() == [3, 5]
    assert torch.equal(again.rescore(state, scores.clone(), True), scores)  # relaxed: it yields
    state.avoid = (len(state.generated) + 1, frozenset({3}))
    assert torch.equal(again.rescore(state, scores.clone(), False), scores)  # another position


class CheckedRows:
    """Rows that, after every `truncate`, check the next forward against rows reading the whole
    context afresh: a line written again must see exactly what it would from a clean start."""

    def __init__(self, rows: Any, fresh: Any) -> None:
        self.rows = rows
        self.fresh = fresh
        self.fed: list[list[int]] = []  # per row alike: every token fed so far
        self.truncated = False
        self.checked = 0

    @property
    def length(self) -> int:
        return int(self.rows.length)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        assert ids.shape[0] == 1, "the streamed poem feeds every row alike"
        self.fed.append(ids[0].tolist())
        logits = self.rows.forward(ids)
        if self.truncated:
            context = [token for chunk in self.fed for token in chunk]
            again = self.fresh().forward(torch.tensor([context]))
            torch.testing.assert_close(logits, again, rtol=1e-4, atol=1e-4)
            self.checked += 1
            self.truncated = False
        return logits

    def truncate(self, length: int) -> None:
        flat = [token for chunk in self.fed for token in chunk][:length]
        self.fed = [flat]
        self.rows.truncate(length)
        self.truncated = True


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[CheckedRows]:
    made: list[CheckedRows] = []
    real_rows = TorchBackend.rows

    def rows(self: TorchBackend, models: list[Any]) -> CheckedRows:
        checked = CheckedRows(real_rows(self, models), lambda: real_rows(self, models))
        made.append(checked)
        return checked

    monkeypatch.setattr(TorchBackend, "rows", rows)
    return made


def formed(seed: int, tries: int = 3, **overrides: Any) -> SamplingParams:
    return SamplingParams(form="quatrain", seed=seed, line_tries=tries, **overrides)


def lines_of(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def test_a_forced_line_is_written_again_from_rows_taken_back_exactly(
    poet: Poet, checked: list[CheckedRows], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny model is unsure of everything: at -3 nats most of its lines read forced.
    monkeypatch.setattr(line_tries, "FORCED_LOGPROB", -3.0)
    rewritten = 0
    for seed in range(3):
        pieces = list(poet.stream_poem("joy", "the sea is cold tonight", formed(seed)))
        stats = poet.last_stats
        assert stats is not None
        text = "".join(pieces)
        lines = lines_of(text)
        assert len(lines) == 4, text
        # Shown a line at a time: every piece after the first line ends a line (or the poem).
        assert all(piece.endswith("\n") for piece in pieces[1:-1]), pieces
        rewritten += stats.rewritten_lines
        assert stats.discarded_tokens >= stats.rewritten_lines
    assert rewritten > 0
    assert sum(rows.checked for rows in checked) >= rewritten


def test_a_rhymed_line_cut_off_at_its_end_is_written_again_from_rows_taken_back_exactly(
    poet: Poet, checked: list[CheckedRows], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No token reads forced, and every ending does: each rhymed line's word is written again.
    monkeypatch.setattr(line_tries, "FORCED_LOGPROB", -100.0)
    monkeypatch.setattr(line_tries, "ENDING_LOGPROB", 0.0)
    starts: list[int] = []
    real_close = LineTries.close

    def close(self: LineTries, end: Saved) -> Saved | None:
        kept = real_close(self, end)
        if kept is None and self.again is not self.start:
            assert self.again is not None and self.start is not None
            assert self.again.fed > self.start.fed
            starts.append(self.again.fed)
        return kept

    monkeypatch.setattr(LineTries, "close", close)
    for seed in range(2):
        text = "".join(poet.stream_poem("joy", "the sea is cold tonight", formed(seed)))
        assert len(lines_of(text)) == 4, text
    assert starts  # words were written again, not only lines
    assert sum(rows.checked for rows in checked) >= len(starts)


def test_a_poem_without_forced_lines_is_the_poem_written_without_tries(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny model is unsure of everything: its endings of a few tokens sum far below -11.
    monkeypatch.setattr(line_tries, "ENDING_LOGPROB", -100.0)
    once = "".join(poet.stream_poem("joy", "the sea is cold tonight", formed(4, tries=1)))
    tried = "".join(poet.stream_poem("joy", "the sea is cold tonight", formed(4)))
    assert poet.last_stats is not None and poet.last_stats.rewritten_lines == 0
    assert tried == once


def test_free_verse_and_greedy_poems_never_write_a_line_again(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(line_tries, "FORCED_LOGPROB", 0.0)  # every line would read forced
    for params in (
        SamplingParams(seed=5, line_tries=3),
        SamplingParams(form="quatrain", seed=5, line_tries=3, temperature=0.0),
    ):
        pieces = list(poet.stream_poem("joy", "the sea is cold tonight", params))
        assert poet.last_stats is not None and poet.last_stats.rewritten_lines == 0
        assert poet.last_stats.discarded_tokens == 0
        assert len(pieces) > 4  # streamed token by token, not line by line


def test_a_batched_poem_that_writes_a_line_again_finishes_on_its_own(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(line_tries, "FORCED_LOGPROB", -3.0)
    requests = [PoemRequest("joy", "the sea is cold tonight", formed(seed)) for seed in range(3)]
    results = write_poems(poet, requests)
    assert len(results) == 3
    for text, stats in results:
        assert len(lines_of(text)) == 4, text
        assert stats.stop_reason is not None
    assert sum(stats.rewritten_lines for _, stats in results) > 0


def test_a_processor_taken_back_forgets_the_tokens_of_the_try(poet: Poet) -> None:
    from studio.core.generation.decode import PoemDecode

    plan = poet.plan(parse_blend("joy"), [poet.model_info("joy")], "the sea", formed(1))
    decode = PoemDecode(plan, 0.0)
    # The processors that remember the poem's tokens in containers of their own.
    remembering = {"NgramBan", "RepetitionPenalty", "Stutter"}
    processors = [p for p in decode.chain.processors if type(p).__name__ in remembering]
    assert len(processors) == len(remembering)
    scores = torch.linspace(-5.0, 5.0, plan.model.exempt.shape[0])
    tokens = plan.model.tokenizer.encode(" the sea the sea is grey", add_special_tokens=False)

    def rescored() -> list[torch.Tensor]:
        return [p.rescore(decode.state, scores.clone(), False) for p in processors]

    before = rescored()
    saved = [p.snapshot() for p in processors]
    history = list(decode.state.history)
    for token in tokens:
        decode.state.push(token)
        decode.chain.observe(decode.state, token)
    assert any(not torch.equal(a, b) for a, b in zip(before, rescored(), strict=True))
    decode.state.history = history
    for processor, snapshot in zip(processors, saved, strict=True):
        processor.restore(snapshot)
    for a, b in zip(before, rescored(), strict=True):
        assert torch.equal(a, b)
