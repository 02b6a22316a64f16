"""Emotion guidance: the scores, the neutral nucleus, the batched rows, blends and fallbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studio.core.generation.backends.torch_peft import RowForward
from studio.core.generation.poet import Poet
from studio.core.generation.processors.guidance import guided_scores, nucleus_mask
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import STOP_CANCELLED
from tests.helpers.models import (
    build_guided_adapters,
    build_tiny_full_model,
    cancelled_at_third_token,
    pinned_poet,
)
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

pytestmark = pytest.mark.numerics

ENDLESS = {"min_lines": 10_000, "max_lines": 10_000, "max_stanzas": 10_000}


@pytest.fixture
def poet(tiny_base: Path, home: DataHome, tmp_path: Path) -> Poet:
    """A Poet with neutral, joy and sadness adapters on the tiny base."""
    build_guided_adapters(tiny_base, home.models)
    return pinned_poet(home, tmp_path / "no-bundled")


@pytest.fixture
def fp32_poet(tiny_base: Path, home: DataHome, tmp_path: Path) -> Poet:
    """The same at fp32, for comparisons across batch shapes (bf16 kernels round per shape)."""
    build_guided_adapters(tiny_base, home.models)
    return pinned_poet(home, tmp_path / "no-bundled", precision="fp32")


def poem(poet: Poet, emotion: str, first_line: str = "", **settings: Any) -> str:
    return "".join(poet.stream_poem(emotion, first_line, SamplingParams(**settings)))


def separate_logits(poet: Poet, emotions: list[str], ids: list[int]) -> Any:
    """Each emotion's last-position logits from its own plain forward, stacked."""
    import torch

    rows = []
    with torch.inference_mode():
        for emotion in emotions:
            loaded = poet.loader.load(poet.model_info(emotion))
            poet.loader.activate(loaded)
            rows.append(loaded.module(input_ids=torch.tensor([ids])).logits[0, -1].float())
    return torch.stack(rows)


def test_strength_zero_is_plain_sampling_token_for_token(poet: Poet) -> None:
    info = poet.model_info("joy")
    settings = {"seed": 11, **ENDLESS, "max_new_tokens": 40}
    plain = "".join(poet.stream_model(info, "O weep", SamplingParams(**settings)))
    at_zero = poem(poet, "joy", "O weep", strength=0.0, **settings)
    assert at_zero == plain
    assert poet.last_stats is not None and poet.last_stats.strength == 0.0
    guided = poem(poet, "joy", "O weep", strength=1.0, **settings)
    assert poet.last_stats is not None and poet.last_stats.strength == 1.0
    assert guided != plain, "guidance must change what is sampled"


def test_the_guided_scores_match_the_formula_by_hand(poet: Poet) -> None:
    import torch

    ids = [0, 5, 9, 12]
    logits = separate_logits(poet, ["joy", "neutral"], ids)
    strength = 1.5
    scores, allowed = guided_scores(logits, (1.0,), strength)
    lp_e = torch.log_softmax(logits[0], -1)
    lp_n = torch.log_softmax(logits[1], -1)
    by_hand = lp_e + strength * (lp_e - lp_n)
    torch.testing.assert_close(
        torch.log_softmax(scores, -1), torch.log_softmax(by_hand, -1), rtol=1e-5, atol=1e-5
    )
    # The allowed set: the neutral model's 0.9 nucleus, plus the emotion model's top token.
    probs, order = torch.sort(lp_n.exp(), descending=True)
    nucleus = set(order[: int((torch.cumsum(probs, -1) < 0.9).sum()) + 1].tolist())
    assert set(torch.nonzero(allowed).flatten().tolist()) == nucleus | {int(lp_e.argmax())}


def test_a_blend_mixes_the_emotions_around_neutral(poet: Poet) -> None:
    import torch

    logits = separate_logits(poet, ["joy", "sadness", "neutral"], [0, 7, 3])
    weights, strength = (0.7, 0.3), 0.5
    scores, _ = guided_scores(logits, weights, strength)
    lp = torch.log_softmax(logits, -1)
    by_hand = lp[2] + (1 + strength) * (0.7 * (lp[0] - lp[2]) + 0.3 * (lp[1] - lp[2]))
    torch.testing.assert_close(
        torch.log_softmax(scores, -1), torch.log_softmax(by_hand, -1), rtol=1e-5, atol=1e-5
    )
    # Without guidance a blend is the weighted product of the emotion models.
    plain, allowed = guided_scores(logits[:2], weights, 0.0)
    assert allowed is None
    torch.testing.assert_close(
        torch.log_softmax(plain, -1),
        torch.log_softmax(0.7 * lp[0] + 0.3 * lp[1], -1),
        rtol=1e-5,
        atol=1e-5,
    )


def _chain(processors: list[Any], params: SamplingParams) -> Any:
    """A chain of `processors` and the draw of `params`, on the CPU with seed 0."""
    import torch

    from studio.core.generation.chain import Chain
    from studio.core.generation.draw import Draw

    return Chain(processors, Draw(params, 0, torch.device("cpu")))


def test_the_nucleus_filter_keeps_guided_choices_inside_the_neutral_nucleus() -> None:
    import torch

    from studio.core.generation.processors.guidance import Guidance
    from studio.core.generation.state import PoemState

    vocab = 50
    neutral = torch.full((vocab,), -10.0)
    neutral[:5] = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])  # the nucleus is the first few tokens
    emotion = neutral.clone()
    emotion[0] = 6.0  # the emotion model's own top token
    emotion[40] = 4.5  # a token the emotion model likes and neutral finds implausible
    scores, allowed = guided_scores(torch.stack([emotion, neutral]), (1.0,), 2.0)
    mask = nucleus_mask(torch.log_softmax(neutral, -1), 0.9)
    assert not bool(allowed[40]) and not bool(mask[40])
    assert bool(allowed[0]) and int(scores.argmax()) == 40, "unfiltered, 40 would win"
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    chain = _chain([Guidance((1.0,), 2.0)], params)
    state = PoemState([0], torch.zeros(vocab, dtype=torch.bool), eos=49)
    rows = torch.stack([emotion, neutral])
    draws = {chain.choose(state, rows) for _ in range(300)}
    assert draws <= set(torch.nonzero(allowed).flatten().tolist())


def test_a_fully_banned_candidate_set_falls_back_instead_of_failing() -> None:
    import torch

    from studio.core.generation.processors.base import Processor
    from studio.core.generation.processors.min_lines import MinLines
    from studio.core.generation.processors.ngram import NgramBan
    from studio.core.generation.processors.repetition import RepetitionPenalty
    from studio.core.generation.state import PoemState

    vocab = 10
    allowed = torch.zeros(vocab, dtype=torch.bool)
    allowed[3] = True  # the only allowed token would repeat the bigram (3, 3)... then banned

    class OnlyThree(Processor):
        """A preference mask, as guidance's nucleus is."""

        def rescore(self, state: Any, scores: Any, relaxed: bool) -> Any:
            return scores if relaxed else scores.masked_fill(~allowed, float("-inf"))

    state = PoemState([0, 3], torch.zeros(vocab, dtype=torch.bool), eos=9)
    params = SamplingParams(no_repeat_ngram_size=2)
    processors = [
        OnlyThree(),
        RepetitionPenalty(params.repetition_penalty, state),
        NgramBan(2, state),
        MinLines(1),  # eos is banned: the poem has no line yet
    ]
    chain = _chain(processors, params)
    state.push(3)
    chain.observe(state, 3)
    token = chain.choose(state, torch.zeros(1, vocab))
    assert 0 <= token < 9, "a defined fallback token, never eos while eos is banned"


def test_non_finite_scores_are_a_one_line_error() -> None:
    import torch

    from studio.core.generation.state import PoemState

    chain = _chain([], SamplingParams())
    state = PoemState([0], torch.zeros(4, dtype=torch.bool), eos=3)
    with pytest.raises(PoetstudioError, match="damaged"):
        chain.choose(state, torch.tensor([[float("nan")] * 4]))


def test_the_batched_rows_match_separate_forwards(fp32_poet: Poet) -> None:
    import torch

    poet = fp32_poet
    emotions = ["joy", "sadness", "neutral"]
    poet.load("joy+sadness")
    models = [poet.loader.load(poet.model_info(e)) for e in emotions]
    ids = [0, 5, 9, 12, 40]
    with torch.inference_mode():
        rows = RowForward(poet.loader, models)
        assert rows.batched
        batched = [rows.forward(torch.tensor([ids]))]
        for token in (7, 21):
            batched.append(rows.forward(torch.tensor([[token]])))
    for position, logits in enumerate(batched):
        context = ids + [7, 21][:position]
        torch.testing.assert_close(
            logits.float(), separate_logits(poet, emotions, context), rtol=1e-4, atol=1e-4
        )


def test_cancel_stops_a_guided_stream_within_one_token(poet: Poet) -> None:
    params = SamplingParams(seed=1, strength=1.0, **ENDLESS)
    stats, tokens_at_cancel = cancelled_at_third_token(poet, "joy+sadness", "O weep", params)
    assert stats is not None and stats.stop_reason == STOP_CANCELLED
    assert stats.tokens == tokens_at_cancel


def test_without_a_neutral_model_guidance_falls_back_with_a_notice(
    poet: Poet, home: DataHome, tmp_path: Path
) -> None:
    import shutil

    settings = {"seed": 4, **ENDLESS, "max_new_tokens": 20}
    plain = poem(poet, "joy", "O weep", strength=0.0, **settings)
    shutil.rmtree(home.models / "neutral")
    fresh = pinned_poet(home, tmp_path / "no-bundled")
    assert poem(fresh, "joy", "O weep", strength=2.0, **settings) == plain
    stats = fresh.last_stats
    assert stats is not None and stats.strength == 0.0
    assert any("no neutral model" in notice for notice in stats.notices)


def test_the_neutral_model_ignores_strength(poet: Poet) -> None:
    settings = {"seed": 2, **ENDLESS, "max_new_tokens": 20}
    assert poem(poet, "neutral", strength=3.0, **settings) == poem(
        poet, "neutral", strength=0.0, **settings
    )
    assert poet.last_stats is not None and poet.last_stats.strength == 0.0


def test_a_blend_streams_and_reports_its_spec(poet: Poet) -> None:
    text = poem(poet, "joy=3+sadness=1", "O weep", seed=5, strength=1.0, max_new_tokens=20)
    stats = poet.last_stats
    assert stats is not None and text.startswith("O weep\n")
    assert stats.emotion == "joy=0.75+sadness=0.25"
    assert "joy:" in (stats.model or "") and "guided against neutral" in (stats.model or "")
    assert poet.loader.loaded_bases() == 1, "every adapter shares the one base"


def test_full_models_are_guided_by_their_full_neutral_counterpart(
    home: DataHome, tmp_path: Path
) -> None:
    build_tiny_full_model(home.models / "neutral", "neutral", seed=5)
    build_tiny_full_model(home.models / "fear", "fear", seed=6)
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled")
    settings = {"seed": 8, **ENDLESS, "max_new_tokens": 15}
    guided = poem(poet, "fear", "O weep", strength=1.0, **settings)
    stats = poet.last_stats
    assert stats is not None and stats.strength == 1.0 and not stats.notices
    assert guided != poem(poet, "fear", "O weep", strength=0.0, **settings)


def test_strength_outside_its_range_is_a_one_line_error() -> None:
    for bad in (-0.5, 5.5, float("nan"), float("inf")):
        with pytest.raises(PoetstudioError, match="strength must be a number from 0 to 5"):
            SamplingParams(strength=bad).validate()
