"""Each processor alone, on hand-written scores over a vocabulary of six tokens."""

from __future__ import annotations

from typing import Any

import torch

from studio.core.generation.processors.guidance import Guidance
from studio.core.generation.processors.max_lines import MaxLines
from studio.core.generation.processors.max_stanzas import MaxStanzas
from studio.core.generation.processors.min_lines import MinLines
from studio.core.generation.processors.ngram import NgramBan
from studio.core.generation.processors.repetition import RepetitionPenalty
from studio.core.generation.state import PoemState
from studio.core.generation.stats import STOP_MAX_LINES, STOP_MAX_STANZAS

INF = float("inf")
EOS = 5


def state(prompt: list[int], exempt: tuple[int, ...] = ()) -> PoemState:
    """A poem state over six tokens (5 is eos); `exempt` tokens escape the repetition rules."""
    mask = torch.zeros(6, dtype=torch.bool)
    mask[list(exempt)] = True
    return PoemState(prompt, mask, EOS)


def scores(*values: float) -> Any:
    return torch.tensor(values, dtype=torch.float32)


def test_the_repetition_penalty_divides_positive_and_multiplies_negative_seen_scores() -> None:
    poem = state([0, 1, 2, 4], exempt=(4,))  # bos, then 1 and 2 seen; 4 is punctuation
    penalty = RepetitionPenalty(2.0, poem)
    out = penalty.rescore(poem, scores(1.0, 4.0, -3.0, 4.0, 4.0, 1.0), relaxed=False)
    assert out.tolist() == [1.0, 2.0, -6.0, 4.0, 4.0, 1.0]
    poem.push(3)
    penalty.observe(poem, 3)
    assert penalty.rescore(poem, scores(0, 0, 0, 8.0, 0, 0), False)[3] == 4.0


def test_the_repetition_penalty_on_seen_tokens_alone_equals_the_whole_vocabulary_rule() -> None:
    """The penalty gathers the seen tokens' scores only; every score comes out bit for bit as the
    rule over the whole vocabulary gives it (zero, negative, -inf and exempt tokens too)."""
    vocab = 49_152
    generator = torch.Generator().manual_seed(3)
    exempt = torch.rand(vocab, generator=generator) < 0.01
    history = torch.randint(0, vocab, (300,), generator=generator).tolist()
    poem = PoemState([0, *history[:40]], exempt, EOS)
    penalty = RepetitionPenalty(1.15, poem)
    for token in history[40:]:
        poem.push(token)
        penalty.observe(poem, token)
    seen = torch.zeros(vocab, dtype=torch.bool)
    seen[torch.tensor(history)] = True
    seen &= ~exempt
    for _ in range(3):
        raw = torch.randn(vocab, generator=generator) * 4
        raw[torch.tensor(history[:20])] = 0.0
        raw[torch.tensor(history[20:30])] = -INF
        whole = torch.where(seen, torch.where(raw > 0, raw / 1.15, raw * 1.15), raw)
        assert torch.equal(penalty.rescore(poem, raw.clone(), relaxed=False), whole)


def test_the_ngram_ban_refuses_a_repeat_unless_relaxed() -> None:
    poem = state([0, 1, 2, 3, 1])  # the bigram (1, 2) was written; the poem now ends in 1
    ban = NgramBan(2, poem)
    out = ban.rescore(poem, scores(1, 1, 1, 1, 1, 1), relaxed=False)
    assert out.tolist() == [1, 1, -INF, 1, 1, 1]
    assert ban.rescore(poem, scores(1, 1, 1, 1, 1, 1), relaxed=True).tolist() == [1] * 6
    poem.push(4)
    ban.observe(poem, 4)  # now (1, 4) is written too
    poem.push(1)
    ban.observe(poem, 1)
    assert ban.rescore(poem, scores(1, 1, 1, 1, 1, 1), False).tolist() == [1, 1, -INF, 1, -INF, 1]


def test_the_ngram_ban_spares_exempt_tokens() -> None:
    poem = state([0, 1, 4, 1], exempt=(4,))
    assert NgramBan(2, poem).rescore(poem, scores(1, 1, 1, 1, 1, 1), False)[4] == 1


def test_eos_is_masked_until_the_poem_has_its_minimum_lines_even_relaxed() -> None:
    poem = state([0])
    rule = MinLines(2)
    poem.feed("one\n")
    assert rule.rescore(poem, scores(1, 1, 1, 1, 1, 1), relaxed=True)[EOS] == -INF
    poem.feed("tw")  # the open line counts
    assert rule.rescore(poem, scores(1, 1, 1, 1, 1, 1), relaxed=False)[EOS] == 1


def test_the_line_limit_ends_the_poem_at_the_newline_closing_the_last_line() -> None:
    poem = state([0])
    limit = MaxLines(2)
    assert poem.feed("one\n\n", [limit]) == (5, None)  # a blank line closes no line
    assert poem.feed("two\nthree", [limit]) == (3, STOP_MAX_LINES)
    assert poem.text == "one\n\ntwo"


def test_the_stanza_limit_ends_the_poem_before_the_blank_line_that_opens_one_too_many() -> None:
    poem = state([0])
    limit = MaxStanzas(2)
    assert poem.feed("a\n\nb\n", [limit]) == (5, None)
    assert poem.stanzas == 2
    assert poem.feed("c\n\nd", [limit]) == (2, STOP_MAX_STANZAS)


def test_guidance_scores_the_rows_and_keeps_the_neutral_nucleus_unless_relaxed() -> None:
    poem = state([0])
    emotion = scores(0.0, 5.0, 4.9, 0.0, 0.0, 0.0)
    neutral = scores(0.0, 9.0, 8.0, 0.0, -9.0, 0.0)  # its nucleus: 1 and 2
    poem.rows = torch.stack([emotion, neutral])
    guidance = Guidance((1.0,), 1.0)
    out = guidance.rescore(poem, emotion.clone(), relaxed=False)
    assert torch.isfinite(out).tolist() == [False, True, True, False, False, False]
    assert int(out.argmax()) == 2, "neutral prefers 1 far more than the emotion does"
    relaxed = guidance.rescore(poem, emotion.clone(), relaxed=True)
    assert bool(torch.isfinite(relaxed).all()) and int(relaxed.argmax()) == 4


def test_a_blend_without_guidance_mixes_the_emotion_rows() -> None:
    poem = state([0])
    poem.rows = torch.stack([scores(2, 0, 0, 0, 0, 0), scores(0, 4, 0, 0, 0, 0)])
    out = Guidance((0.75, 0.25), 0.0).rescore(poem, poem.rows[0].clone(), relaxed=False)
    assert out.tolist() == [1.5, 1.0, 0, 0, 0, 0]


def test_the_state_names_the_open_lines_finished_words() -> None:
    poem = state([0])
    poem.feed("The grey sea\nsighs bene")
    assert poem.lines == 2 and poem.done_lines == 1 and poem.words == ["sighs"]
    poem.feed("ath ")
    assert poem.words == ["sighs", "beneath"] and poem.line == "sighs beneath "
