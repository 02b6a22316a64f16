"""The evaluation's metrics measure what they claim, on hand-made poems; the strength rule
picks what it says it picks."""

import math

import pytest

from tests.helpers.evaldata import sweep, sweep_row
from trainer.common.emotions import EMOTIONS, count_emotions, label_counts
from trainer.evaluation.metrics import (
    EVAL_PROMPTS,
    EvalCase,
    TrainingIndex,
    distinct_n,
    eval_cases,
    fluency_ppl,
    has_junk,
    per_emotion_picks,
    pick_strength,
    poem_distinct_1,
    render_markdown,
    score_poems,
    stutter_reason,
    stutters,
)
from trainer.evaluation.stopwords import SNOWBALL_ENGLISH, STOPWORDS, is_content_word


def test_eval_prompts_carry_no_emotion() -> None:
    for prompt in EVAL_PROMPTS:
        assert label_counts(count_emotions(prompt)) == "neutral", prompt


def test_eval_cases_are_fixed() -> None:
    cases = eval_cases(12)
    # Reports are compared across runs: the seeds and first lines must never drift.
    assert [case.seed for case in cases] == list(range(1234, 1246))
    assert [case.index for case in cases] == list(range(12))
    assert cases[1].first_line == cases[11].first_line == "The evening comes across the field"
    assert eval_cases(5) == cases[:5]
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
    assert "| sad | sadness | — | 4 | 50% | 67% | — |" in markdown
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


def test_within_poem_distinct_1_counts_each_poem_alone() -> None:
    assert poem_distinct_1("long long long time") == pytest.approx(0.5)
    assert poem_distinct_1("the sea, the sky") == pytest.approx(3 / 4)
    assert poem_distinct_1("") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "the river2 runs",
        "a 3rd morning",
        "<br> and the sea",
        "see [the hills](far away)",
        "the **bold** wind",
        "a *quiet* night",
        "```python",
        "visit http now",
        "www.poems",
        "poems.com today",
        "the%20sea",
        "a broken \ufffd char",
        "&amp; the night",
    ],
)
def test_junk_is_found(text: str) -> None:
    assert has_junk(text)


@pytest.mark.parametrize(
    "text",
    [
        "The evening comes across the field,\nand the stars—O, the stars!—are out.",
        "I walked; 'tis late; the river's voice * is low",
        "Under the old bridge (where the willows are) we sat",
        "In 1850 the bells rang twice",
    ],
)
def test_verse_is_not_junk(text: str) -> None:
    assert not has_junk(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Hate, hate, hate,\nDeath, death, death", "hate hate"),
        ("Weeks, weeks, days", "weeks weeks"),
        ("I trust; trust; trust in thee", "trust trust"),
        ("and lest, lest we forget", "lest lest"),
        ("O god, God of the hills", "god god"),
        ("the end of the line\nline by line", "line line"),  # across a line break
        ("the the wind", "the the"),  # any word, stop words too
        ("love is here\nand love is there\nI love the love that loves", "love x4"),
    ],
)
def test_stutter_is_found(text: str, reason: str) -> None:
    assert stutter_reason(text) == reason
    assert stutters(text)


@pytest.mark.parametrize(
    "text",
    [
        "love is here\nand love is there\nI love the day",  # three times: allowed
        # Stop words and verse's archaic forms may come often.
        "Thou art the sea, and thou art the sky,\nthou art the wind, and thou art I",
        "The evening comes across the field,\nand the stars are out.",
        "' ' the quote marks alone",
        "Ráma’s counsel divine,\n(By truth’s virtue’s guide),\nAnd duty’s law, his master’s",
    ],
)
def test_verse_does_not_stutter(text: str) -> None:
    assert stutter_reason(text) is None


def test_content_words_are_those_outside_the_snowball_list() -> None:
    assert len(SNOWBALL_ENGLISH) == 174  # the published list's active entries
    assert {"the", "and", "ought", "i'm", "thou", "thy"} <= STOPWORDS
    assert is_content_word("love") and not is_content_word("the")
    assert not is_content_word("'")


def test_fluency_is_the_geometric_mean_of_poem_perplexities() -> None:
    assert fluency_ppl([math.log(10), math.log(1000), None]) == pytest.approx(100)
    assert fluency_ppl([None]) is None


def test_score_poems_reports_degeneration_and_the_judge() -> None:
    first = "The train goes north"
    case = EvalCase(0, first, 1)
    poems = [
        (case, f"{first}\nlong long long long time"),  # distinct-1 0.4: below 0.5
        (case, f"{first}\nthe wind is in the www.trees"),  # junk
        (case, f"{first}\nand the hills are green"),
        (case, f"{first}\nthe rain falls on the sea"),
    ]
    judged = ["joy", "joy", "fear", "sadness"]
    result = score_poems("j", "joy", poems, None, judged, [1.0, 2.0, 3.0, None], strength=1.0)
    assert result.stutter_poems == pytest.approx(1 / 4)  # "long long"
    assert result.low_distinct_poems == pytest.approx(1 / 4)
    assert result.junk_poems == pytest.approx(1 / 4)
    assert result.poem_distinct_1 == pytest.approx((0.4 + 6 / 7 + 1 + 5 / 6) / 4)
    assert result.judge_fidelity == pytest.approx(2 / 4)
    assert result.judge_labels == {"fear": 1, "joy": 2, "sadness": 1}
    assert result.base_ppl == pytest.approx(math.exp(2.0))
    assert result.strength == 1.0
    neutral = score_poems("n", "neutral", poems, None, judged)
    assert neutral.judge_fidelity is None and neutral.judge_labels is not None


def test_rule_picks_the_best_judge_score_that_keeps_every_limit() -> None:
    rows = sweep(
        {
            0.0: {"judge_fidelity": 0.26},
            0.5: {"judge_fidelity": 0.35},
            1.0: {"judge_fidelity": 0.45, "poem_distinct_1": 0.67},
            1.5: {"judge_fidelity": 0.50, "low_distinct_poems": 0.2},  # loops
            2.0: {"judge_fidelity": 0.60, "poem_distinct_1": 0.49},  # word salad
        }
    )
    choice = pick_strength(rows)
    assert choice.strength == 1.0
    assert choice.score == "semantic judge"
    assert [s.passes for s in choice.sweep] == [True, True, True, False, False]
    assert "20% of poems below 0.5" in choice.sweep[3].failures
    assert choice.sweep[4].failures[0].startswith("distinct-1 0.49")
    assert choice.sweep[0].judge_fidelity == pytest.approx(0.26)
    assert choice.notes == []
    assert "distinct-1 >= 0.65" in choice.rule


@pytest.mark.parametrize(
    ("bad", "failure"),
    [
        ({"junk_poems": 0.05}, "junk in 5% of poems"),
        ({"copied_lines": 0.03}, "3.0% lines copied"),
        ({"stutter_poems": 0.04}, "4% of poems stutter"),
        ({"base_ppl": 61.0}, "base ppl 1.52x plain sampling"),
    ],
)
def test_rule_refuses_junk_copies_and_disfluency(bad: dict[str, float], failure: str) -> None:
    rows = sweep({0.0: {"judge_fidelity": 0.2}, 1.0: {"judge_fidelity": 0.9, **bad}})
    choice = pick_strength(rows)
    assert choice.strength == 0.0
    assert choice.sweep[1].failures == [failure]


def test_rule_breaks_ties_toward_less_guidance() -> None:
    choice = pick_strength(sweep({0.5: {}, 1.0: {}, 0.0: {}}))
    assert choice.strength == 0.0
    assert [s.strength for s in choice.sweep] == [0.0, 0.5, 1.0]


def test_rule_falls_back_to_emolex_without_the_judge_and_says_so() -> None:
    rows = sweep(
        {
            0.0: {"judge_fidelity": None, "fidelity": 0.5},
            1.0: {"judge_fidelity": None, "fidelity": 0.9},
        }
    )
    choice = pick_strength(rows)
    assert choice.strength == 1.0
    assert choice.score == "EmoLex"
    assert "EmoLex fidelity" in choice.rule
    assert any("ranked by EmoLex" in note for note in choice.notes)


def test_rule_without_plain_sampling_cannot_check_perplexity() -> None:
    choice = pick_strength(sweep({1.0: {"base_ppl": 500.0}}))
    assert choice.strength == 1.0
    assert any("perplexity limit was not checked" in note for note in choice.notes)


def test_rule_may_pick_nothing() -> None:
    choice = pick_strength(sweep({0.0: {"poem_distinct_1": 0.5}}))
    assert choice.strength is None
    assert "no strength keeps every limit" in choice.notes


def test_rule_ignores_rows_without_a_strength() -> None:
    control = sweep_row("joy", 0.0, judge_fidelity=0.99)
    control.strength = None
    neutral = sweep_row("neutral", 0.0)
    neutral.strength = None
    choice = pick_strength([control, neutral, *sweep({1.0: {}})])
    assert [s.strength for s in choice.sweep] == [1.0]
    assert choice.sweep[0].emotions == list(EMOTIONS)


def test_markdown_shows_the_sweep_the_rule_and_the_chart() -> None:
    rows = sweep({0.0: {"judge_fidelity": 0.25}, 2.0: {"poem_distinct_1": 0.4}})
    choice = pick_strength(rows)
    markdown = render_markdown(rows, "poetstudio eval", {}, choice, ["a note"], "eval-x.png")
    assert "## Strength sweep" in markdown
    assert "| 0 | 50% | 25% | 0.80 | 0% | 0% | 0% | 0.0% | 40.0 | 1.00x | yes |" in markdown
    assert "no: distinct-1 0.40 < 0.65" in markdown
    assert "**Picked strength: 0**" in markdown
    assert "**Rule.** Pick the strength with the highest mean semantic judge" in markdown
    assert "| joy | 50% / 25% / 0.80 / 0% | 50% / 30% / 0.40 / 0% |" in markdown
    assert "![Fidelity and distinct-1 against strength](eval-x.png)" in markdown
    assert "- note: a note" in markdown
    assert "joy (bundled) s=2" in markdown


def test_the_rule_picks_per_emotion_too() -> None:
    rows = sweep({0.0: {"judge_fidelity": 0.2}, 1.0: {"judge_fidelity": 0.6}})
    for row in rows:
        if row.target == "disgust" and row.strength == 1.0:
            row.stutter_poems = 0.1
    picks = per_emotion_picks(rows)
    assert picks["disgust"] == 0.0 and picks["joy"] == 1.0 and len(picks) == len(EMOTIONS)
    markdown = render_markdown(rows, "poetstudio eval", {}, pick_strength(rows))
    assert "The same rule for each emotion alone picks: anger 1, anticipation 1, disgust 0," in (
        markdown
    )


def test_training_indexes_joined_find_the_copies_of_each() -> None:
    grief = TrainingIndex(["I weep in grief and sorrow all the night long, alone"])
    plain = TrainingIndex(["The lamps are out along the quay,\nand the grey sea sighs tonight"])
    both = TrainingIndex.union([grief, plain])
    assert both.copied_line("The lamps are out along the quay")
    assert both.copied_span("so i weep in grief and sorrow all the night")
    assert not grief.copied_line("The lamps are out along the quay")  # the parts stay as they were
    with pytest.raises(ValueError, match="spans"):
        TrainingIndex.union([grief, TrainingIndex([], span=4)])
