"""Co-writing's core: K candidates as batched rows, cancel, the kept cache, undo and rewrite."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from studio.core.cowrite import writer as writer_module
from studio.core.cowrite.candidate import END_CANCELLED
from studio.core.cowrite.poemtext import line_ids, poem_ids
from studio.core.cowrite.writer import CoWriter, check_count
from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from trainer.common.errors import PoetstudioError

pytestmark = pytest.mark.numerics

FIRST_LINE = "The lamps are out along the quay"


class Counting:
    """Wraps the backend's batches to record the input length of every forward."""

    def __init__(self, poet: Poet) -> None:
        self.lengths: list[int] = []
        self.rows_seen: list[int] = []
        backend = poet.backend
        opened = backend.rows

        def rows(models: list[Any]) -> Any:
            batch = opened(models)
            forward = batch.forward

            def counted(ids: Any) -> Any:
                out = forward(ids)
                self.lengths.append(int(ids.shape[1]))
                self.rows_seen.append(int(out.shape[0]))
                return out

            batch.forward = counted  # type: ignore[method-assign]
            return batch

        backend.rows = rows  # type: ignore[method-assign]


def test_k_batched_candidates_score_as_each_one_alone(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    seen: dict[int, list[torch.Tensor]] = {}
    step = CoWriter._step

    def recording(self: CoWriter, decode: Any, row: int, rows: Any, *rest: Any) -> Any:
        if len(self.candidates[row].tokens) < self.line_tokens:
            seen.setdefault(row, []).append(rows.clone())
        return step(self, decode, row, rows, *rest)

    monkeypatch.setattr(CoWriter, "_step", recording)
    writer = CoWriter(poet, "joy", SamplingParams(seed=7), [FIRST_LINE])
    writer.line_tokens = 12
    counting = Counting(poet)
    candidates = writer.write(3)
    assert max(counting.rows_seen) == 6, "3 candidates of 2 rows (joy, neutral) in one forward"
    joy = poet.loader.load(poet.model_info("joy"))
    neutral = poet.loader.load(poet.model_info("neutral"))
    prompt = poem_ids(joy, [FIRST_LINE])
    with poet.backend.decoding(1):
        for candidate in candidates:
            alone = poet.backend.rows([joy, neutral])
            logits = alone.forward(torch.tensor([prompt]))
            for index, token in enumerate(candidate.tokens):
                batched = seen[candidate.row][index]
                # fp32 rows of a batch of 6 against a batch of 2: the matmuls sum in another
                # order, about 1e-6 relative on logits of a few units; never token for token.
                torch.testing.assert_close(
                    torch.log_softmax(batched, -1),
                    torch.log_softmax(logits, -1),
                    atol=1e-4,
                    rtol=1e-4,
                )
                logits = alone.forward(torch.tensor([[token]]))
    assert len({c.seed for c in candidates}) == 3


def test_cancel_stops_the_k_rows_within_one_token(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(seed=1), [FIRST_LINE])
    counting = Counting(poet)
    cancel = threading.Event()
    stream = writer.stream(3, cancel=cancel)
    updates = []
    for update in stream:
        updates.append(update)
        if len(updates) == 7:  # mid-way through the third token's rows
            cancel.set()
            forwards = len(counting.lengths)
    assert len(counting.lengths) == forwards, "no forward after the cancel"
    assert all(c.done for c in writer.candidates)
    assert END_CANCELLED in {c.ended for c in writer.candidates}
    # The cache is back to the poem: the next run reads nothing new.
    writer.write(2)
    assert counting.lengths[forwards] == 1, "a step of the new run, not a re-read"


def test_accepting_a_line_reads_only_that_line(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(seed=2), [FIRST_LINE])
    counting = Counting(poet)
    writer.write(3)
    joy = poet.loader.load(poet.model_info("joy"))
    assert counting.lengths[0] == len(poem_ids(joy, [FIRST_LINE]))
    line = writer.accept("and the grey sea sighs beneath the stars")
    before = len(counting.lengths)
    writer.write(3)
    assert counting.lengths[before] == len(line_ids(joy, line))
    assert writer.cache.reads[-1] == len(line_ids(joy, line))


def test_an_emotion_change_rereads_the_poem_once(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(seed=2), [FIRST_LINE, "and the grey sea"])
    writer.write(2)
    writer.emotion = "sadness"
    writer.write(2)
    writer.write(2)
    sad = poet.loader.load(poet.model_info("sadness"))
    whole = len(poem_ids(sad, writer.lines))
    assert writer.cache.reads == [whole, whole], "once for joy, once for sadness, then kept"


def test_undo_takes_back_the_last_line_and_then_nothing(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(seed=2), [FIRST_LINE])
    writer.accept("the night is cold")
    assert writer.undo() == "the night is cold"
    assert writer.undo() == FIRST_LINE
    assert writer.undo() is None
    assert writer.notices == ["nothing to take back: the poem has no line yet"]
    writer.write(2)  # from nothing
    assert all(c.text for c in writer.candidates), "a candidate line opens with words"


def test_a_rewrite_ranks_candidates_by_the_lines_after(poet: Poet) -> None:
    lines = [FIRST_LINE, "and the grey sea sighs beneath the stars", "O weep for the friend"]
    writer = CoWriter(poet, "joy", SamplingParams(seed=4), lines)
    for _ in writer.rewrite(2, 3):
        pass
    scores = [c.follow_logprob for c in writer.candidates]
    assert all(s is not None and s < 0 for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    assert writer.lines == lines, "a rewrite proposes; the poem is unchanged"
    with pytest.raises(PoetstudioError, match="line 4 is not in the poem"):
        list(writer.rewrite(4, 3))
    with pytest.raises(PoetstudioError, match="line 0 is not in the poem"):
        list(writer.rewrite(0, 3))


def test_candidate_count_is_checked() -> None:
    assert check_count(8) == 8
    for bad in (0, 9):
        with pytest.raises(PoetstudioError, match="candidates must be 1 to 8"):
            check_count(bad)


def test_a_poem_over_the_context_keeps_its_last_lines(poet: Poet) -> None:
    long_poem = [f"the grey sea sighs beneath the stars {i}" for i in range(40)]
    writer = CoWriter(poet, "joy", SamplingParams(seed=2), long_poem)
    writer.write(1)
    assert any("longer than the model's context" in n for n in writer.notices)
    joy = poet.loader.load(poet.model_info("joy"))
    assert writer.cache.reads[0] <= joy.context - writer_module.MAX_LINE_TOKENS


def test_one_row_forked_into_candidates_runs_them_in_one_forward(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(seed=2, strength=0.0), [FIRST_LINE])
    writer.write(3)
    batch = writer.cache.batch
    assert getattr(batch, "batched", None) is True, "the 3 copies of one row share a forward"


def test_finish_writes_the_rest_of_the_poem_on_the_kept_cache(poet: Poet) -> None:
    params = SamplingParams(seed=3, max_lines=4, min_lines=4, max_new_tokens=120)
    writer = CoWriter(poet, "joy", params, [FIRST_LINE, "and the grey sea sighs"])
    writer.write(2)
    updates = list(writer.finish())
    assert updates[-1].done and updates[-1].row == 0
    assert writer.cache.reads == [
        len(poem_ids(poet.backend.load(poet.model_info("joy")), writer.lines))
    ]
    assert writer.candidates[0].ended is not None


def test_a_fresh_seed_per_run_unless_the_settings_fix_one(poet: Poet) -> None:
    writer = CoWriter(poet, "joy", SamplingParams(), [FIRST_LINE])
    first = [c.seed for c in writer.write(2)]
    assert first != [c.seed for c in writer.write(2)]
    writer.params = SamplingParams(seed=9)
    assert [c.seed for c in writer.write(2)] == [9, 10]


def test_accepting_a_candidate_as_it_stands_reads_nothing(poet: Poet) -> None:
    import torch

    from studio.core.generation.steer import Steer

    writer = CoWriter(poet, "joy", SamplingParams(seed=5), [FIRST_LINE])
    counting = Counting(poet)
    # Lines steered onto a rhyme end on their newline on the tiny model.
    chosen = next(
        c
        for c in writer.write(4, Steer(rhyme_with="sea"))
        if c.ended == "newline" and writer_module._spells(writer._base_plan(), c.tokens, c.text)
    )
    writer.accept(chosen.text, chosen)
    before = len(counting.lengths)
    held = writer.cache.read(
        poet.backend, writer._base_plan().rows, writer._plan(writer.lines, Steer())[0].prompt
    )
    assert writer.cache.reads[-1] == 0 and len(counting.lengths) == before, "no forward at all"
    fresh = CoWriter(poet, "joy", SamplingParams(seed=5), writer.lines)
    fresh._spelled = dict(writer._spelled)
    plan = fresh._plan(fresh.lines, Steer())[0]
    with poet.backend.decoding(1):
        again = fresh.cache.read(poet.backend, plan.rows, plan.prompt)
    assert fresh.cache.reads == [len(plan.prompt)]
    # The held rows read the poem in a batch of 8 rows, the fresh ones in 2: fp32 rounding apart.
    torch.testing.assert_close(
        torch.log_softmax(held, -1), torch.log_softmax(again, -1), atol=1e-4, rtol=1e-4
    )
    writer.write(3)  # and the run after it starts from those rows
    assert writer.cache.reads[-1] == 0


def test_the_first_row_steps_before_the_other_rows_are_set_up(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each candidate's processors read the whole poem; only row 0's may delay the first token.
    built: list[int] = []
    made = CoWriter._decodes

    def counted(self: CoWriter, plan: Any, count: int, started: float, start: int = 0) -> Any:
        decodes = made(self, plan, count, started, start)
        built.append(len(decodes))
        return decodes

    monkeypatch.setattr(CoWriter, "_decodes", counted)
    writer = CoWriter(poet, "joy", SamplingParams(seed=3), [FIRST_LINE])
    stream = writer.stream(3)
    first = next(stream)
    assert first.row == 0 and sum(built) == 1
    rest = list(stream)
    assert sum(built) == 3 and {u.row for u in rest} == {0, 1, 2}
    assert [c.seed for c in writer.candidates] == [3, 4, 5]
