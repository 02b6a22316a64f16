"""Writing many poems at once: every poem as if it were streamed alone, its rows batched.

Token-for-token equality with a stream is asserted only where the arithmetic is the same by
construction: one poem in the batch, so rows of the same shape in the same dtype. Poems batched
together run matmuls of another batch size, which CPU kernels (AVX-512 ones especially) may sum in
another order, and sampling amplifies a last-bit difference into another poem; there each poem's
scores are compared with the same tokens scored alone, within fp32 rounding.
"""

from __future__ import annotations

from typing import Any

import pytest

from studio.core.batch import PoemRequest, write_poems
from studio.core.generation.backends.torch_peft import RowForward
from studio.core.generation.decode import PoemDecode
from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams

pytestmark = pytest.mark.numerics


def requests(poet: Poet) -> list[PoemRequest]:
    """Single emotions, a blend and neutral, guided and not, from three first lines; the base."""
    made = [
        PoemRequest(emotion, line, SamplingParams(seed=seed, strength=strength, max_new_tokens=30))
        for emotion in ("joy", "sadness", "joy+sadness", "neutral")
        for line in ("O weep", "The lamps are out", "")
        for seed, strength in ((1, 0.0), (2, 1.0), (3, 2.5))
    ]
    made.append(PoemRequest("", "O weep", SamplingParams(seed=4), info=poet.model_info("joy")))
    return made


def streamed(poet: Poet, request: PoemRequest) -> str:
    if request.info is not None:
        return "".join(poet.stream_model(request.info, request.first_line, request.params))
    return "".join(poet.stream_poem(request.emotion, request.first_line, request.params))


def check_stats(request: PoemRequest, stats: Any) -> None:
    assert stats.seed == request.params.seed
    assert stats.tokens > 0 and stats.stop_reason is not None
    expected = 0.0 if request.emotion == "neutral" or request.info else request.params.strength
    assert stats.strength == expected


def test_a_poem_alone_in_its_batch_matches_it_streamed_token_for_token(poet: Poet) -> None:
    for request in requests(poet):
        [(text, stats)] = write_poems(poet, [request])
        assert text == streamed(poet, request), request
        check_stats(request, stats)


def test_poems_batched_together_score_every_token_as_if_alone(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    steps: dict[int, tuple[Any, list[tuple[Any, int]]]] = {}
    choose = PoemDecode.choose

    def recording(state: PoemDecode, logits: Any) -> int:
        token = choose(state, logits)
        steps.setdefault(id(state.stats), (state.plan, []))[1].append((logits.clone(), token))
        return token

    monkeypatch.setattr(PoemDecode, "choose", recording)
    wanted = requests(poet)
    done: list[tuple[int, int]] = []
    results = write_poems(poet, wanted, max_rows=7, on_poem=lambda d, t: done.append((d, t)))
    monkeypatch.undo()
    assert len(results) == len(wanted)
    assert done == [(n, len(wanted)) for n in range(1, len(wanted) + 1)]
    with torch.inference_mode():
        for request, (_, stats) in zip(wanted, results, strict=True):
            check_stats(request, stats)
            plan, chosen = steps[id(stats)]
            assert len(chosen) == stats.tokens
            alone = RowForward(poet.loader, plan.rows)
            ids = torch.tensor([plan.prompt])
            for batched_logits, token in chosen:
                # fp32 logits of the tiny model are of order 1 to 10; another summation order
                # moves them by about 1e-6, and a row of another poem or adapter by far more.
                torch.testing.assert_close(
                    alone.forward(ids).float(), batched_logits.float(), rtol=1e-4, atol=1e-4
                )
                ids = torch.tensor([[token]])


def test_poems_in_one_batch_stop_on_their_own(poet: Poet) -> None:
    params = [
        SamplingParams(seed=1, max_new_tokens=3, min_lines=100, max_lines=100),
        SamplingParams(seed=1, max_new_tokens=25, min_lines=100, max_lines=100),
        SamplingParams(seed=2, max_new_tokens=12, min_lines=100, max_lines=100),
    ]
    results = write_poems(poet, [PoemRequest("joy", "O weep", p) for p in params])
    assert [stats.tokens for _, stats in results] == [3, 25, 12]
    assert all(stats.stop_reason == "max_tokens" for _, stats in results)


def test_waiting_poems_join_a_running_batch_as_others_end(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One batch writes them all: poems of both first lines join it as earlier ones end."""
    from studio.core.generation.backends.torch_peft import TorchBackend

    batches: list[int] = []
    joined: list[int] = []
    rows, join = TorchBackend.rows, RowForward.join

    def counted_rows(self: TorchBackend, models: Any) -> RowForward:
        batches.append(len(models))
        return rows(self, models)

    def counted_join(self: RowForward, models: Any, ids: Any) -> Any:
        joined.append(ids.shape[1])
        return join(self, models, ids)

    monkeypatch.setattr(TorchBackend, "rows", counted_rows)
    monkeypatch.setattr(RowForward, "join", counted_join)
    lengths = [4 + 3 * seed for seed in range(6)]
    wanted = [
        PoemRequest(
            "joy",
            line,
            SamplingParams(
                seed=seed, strength=0.0, max_new_tokens=tokens, min_lines=100, max_lines=100
            ),
        )
        for line in ("O weep", "The lamps are out")
        for seed, tokens in enumerate(lengths)
    ]
    results = write_poems(poet, wanted, max_rows=4)
    assert [stats.tokens for _, stats in results] == lengths * 2
    assert batches == [4]  # unguided poems, a row each: the first four started it
    assert len(joined) >= 4 and len(set(joined)) == 2  # both first lines' prompts joined
