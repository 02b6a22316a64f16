"""Writing many poems at once: every poem as if it were streamed alone, its rows batched."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.core.batch import PoemRequest, write_poems
from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from tests.helpers.models import build_guided_adapters
from trainer.common.home import DataHome


@pytest.fixture
def poet(tiny_base: Path, home: DataHome, tmp_path: Path) -> Poet:
    """A Poet with neutral, joy and sadness adapters on the tiny base."""
    build_guided_adapters(tiny_base, home.models)
    return Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled")


def streamed(poet: Poet, request: PoemRequest) -> str:
    if request.info is not None:
        return "".join(poet.stream_model(request.info, request.first_line, request.params))
    return "".join(poet.stream_poem(request.emotion, request.first_line, request.params))


def test_batched_poems_match_the_same_poems_streamed_one_by_one(poet: Poet) -> None:
    base = poet.model_info("joy")
    requests = [
        PoemRequest(emotion, line, SamplingParams(seed=seed, strength=strength, max_new_tokens=30))
        for emotion in ("joy", "sadness", "joy+sadness", "neutral")
        for line in ("O weep", "The lamps are out", "")
        for seed, strength in ((1, 0.0), (2, 1.0), (3, 2.5))
    ]
    requests.append(PoemRequest("", "O weep", SamplingParams(seed=4), info=base))
    done: list[tuple[int, int]] = []
    results = write_poems(poet, requests, max_rows=7, on_poem=lambda d, t: done.append((d, t)))
    assert len(results) == len(requests)
    assert done[-1] == (len(requests), len(requests)) and len(done) == len(requests)
    for request, (text, stats) in zip(requests, results, strict=True):
        assert text == streamed(poet, request), request
        assert stats.seed == request.params.seed
        assert stats.tokens > 0 and stats.stop_reason is not None
        expected = 0.0 if request.emotion == "neutral" or request.info else request.params.strength
        assert stats.strength == expected


def test_poems_in_one_batch_stop_on_their_own(poet: Poet) -> None:
    params = [
        SamplingParams(seed=1, max_new_tokens=3, min_lines=100, max_lines=100),
        SamplingParams(seed=1, max_new_tokens=25, min_lines=100, max_lines=100),
        SamplingParams(seed=2, max_new_tokens=12, min_lines=100, max_lines=100),
    ]
    results = write_poems(poet, [PoemRequest("joy", "O weep", p) for p in params])
    assert [stats.tokens for _, stats in results] == [3, 25, 12]
    assert all(stats.stop_reason == "max_tokens" for _, stats in results)
