"""The evaluation's metrics measure what they claim, on hand-made poems."""

import pytest

from trainer.emotions import count_emotions, label_counts
from trainer.evaluate import (
    EVAL_PROMPTS,
    EvalCase,
    TrainingIndex,
    distinct_n,
    eval_cases,
    render_markdown,
    score_poems,
)


def test_eval_prompts_carry_no_emotion() -> None:
    for prompt in EVAL_PROMPTS:
        assert label_counts(count_emotions(prompt)) == "neutral", prompt


def test_eval_cases_are_fixed() -> None:
    assert eval_cases(12) == eval_cases(12)
    cases = eval_cases(12)
    assert cases[0].first_line == "" and cases[10].first_line == ""
    assert len({case.seed for case in cases}) == 12


def test_distinct_n() -> None:
    assert distinct_n(["long long long long"], 1) == pytest.approx(0.25)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n([""], 2) == 0.0


def test_training_index_finds_copies() -> None:
    index = TrainingIndex(["The lamps are out along the quay,\nand the grey sea sighs tonight"])
    assert index.copied_line("the lamps are OUT along the quay")
    assert not index.copied_line("the lamps are out")
    assert index.copied_span("so the lamps are out along the quay and the grey")
    assert not index.copied_span("lamps are out along a quay and the grey sea")


def test_score_poems_counts_mixed_as_miss() -> None:
    case = EvalCase(0, "", 1)
    poems = [
        (case, "I weep in grief and sorrow"),  # sadness
        (case, "I weep in grief and sorrow for the dead"),  # sadness
        (case, "joy and weeping"),  # a tie: mixed
        (case, "the road goes west"),  # neutral
    ]
    result = score_poems("sad", "sadness", poems, TrainingIndex(["I weep in grief and sorrow"]))
    assert result.labels.get("sadness") == 2
    assert result.fidelity == pytest.approx(2 / 4)
    assert result.fidelity_excl_mixed == pytest.approx(2 / 3)
    assert result.copied_lines == pytest.approx(1 / 4)
    markdown = render_markdown([result], "poetstudio eval", {"dataset": "clean"})
    assert "| sad | sadness | 4 | 50% | 67% |" in markdown
    assert "█" in markdown


def test_neutral_counts_mixed_as_hit() -> None:
    case = EvalCase(0, "", 1)
    poems = [(case, "the road goes west"), (case, "joy and weeping"), (case, "I weep")]
    result = score_poems("neutral", "neutral", poems, None)
    assert result.fidelity == pytest.approx(2 / 3)


def test_first_line_is_not_scored_as_copied() -> None:
    case = EvalCase(1, "The evening comes across the field", 7)
    text = "The evening comes across the field\nand a new line of verse"
    result = score_poems("x", "joy", [(case, text)], TrainingIndex([case.first_line]))
    assert result.copied_lines == 0.0
