"""The cost of form against free verse: a paired bootstrap over seeds, pooled per form."""

from trainer.evaluation.formcost import paired_bootstrap, summarise_forms
from trainer.evaluation.metrics import EvalCase, score_poems

QUATRAIN = "The night is long\nThe day is bright\nI sing a song\nThe sun is light"


def test_the_bootstrap_of_identical_verdicts_is_zero_with_no_width() -> None:
    verdicts = {("joy", s): s % 2 == 0 for s in range(20)}
    interval = paired_bootstrap(verdicts, dict(verdicts))
    assert interval is not None
    assert (interval.difference, interval.low, interval.high, interval.pairs) == (0, 0, 0, 20)


def test_the_bootstrap_pairs_by_emotion_and_seed() -> None:
    free = {("joy", s): True for s in range(10)} | {("fear", s): True for s in range(10)}
    # The form loses joy on every seed and keeps fear: half the pairs drop by one.
    formed = {("joy", s): False for s in range(10)} | {("fear", s): True for s in range(10)}
    interval = paired_bootstrap(free, formed)
    assert interval is not None
    # Each seed carries both emotions, so every draw has the same mean: no spread.
    assert (interval.difference, interval.low, interval.high) == (-0.5, -0.5, -0.5)
    uneven = {("joy", s): s < 5 for s in range(10)}
    spread = paired_bootstrap({("joy", s): True for s in range(10)}, uneven)
    assert spread is not None
    assert spread.low < spread.difference == -0.5 < spread.high
    assert paired_bootstrap(free, {("joy", 99): True}) is None


def test_the_bootstrap_is_deterministic() -> None:
    free = {("joy", s): s % 3 == 0 for s in range(30)}
    formed = {("joy", s): s % 2 == 0 for s in range(30)}
    assert paired_bootstrap(free, formed) == paired_bootstrap(free, formed)


def test_forms_pool_their_scores_and_compare_with_free_verse() -> None:
    cases = [EvalCase(i, "", 100 + i) for i in range(4)]
    free = score_poems(
        "joy",
        "joy",
        [(c, "I feel such joy\nhappy") for c in cases],
        None,
        strength=1.0,
        form="free",
    )
    formed = score_poems(
        "joy", "joy", [(c, QUATRAIN) for c in cases], None, strength=1.0, form="quatrain"
    )
    assert formed.form_score is not None and formed.form_score["rhyme_pairs"] == 8
    assert formed.seeds == [100, 101, 102, 103] and formed.poems[0] == QUATRAIN
    summaries = {s.form: s for s in summarise_forms([free, formed])}
    assert summaries["quatrain"].score.rhyme_accuracy == 1.0
    assert summaries["quatrain"].score.poems == 4
    assert summaries["free"].score.rhyme_pairs == 0
    # Free verse is labelled joy every time and the quatrain never: minus 100 points.
    interval = summaries["quatrain"].emolex_vs_free
    assert interval is not None and interval.difference == -1.0
    assert summaries["free"].emolex_vs_free is None


def test_a_typed_first_line_is_not_scored_for_syllables_but_still_sets_the_rhyme() -> None:
    from trainer.common.form import parse_form
    from trainer.evaluation.formscore import score_poem

    haiku = [
        "The evening comes across the field",
        "the cold wind walks the long night",
        "a bird sings alone",
    ]
    assert score_poem(haiku, parse_form("haiku")).syllable_poems_exact == 0
    written = score_poem(haiku, parse_form("haiku"), given=1)
    assert (written.syllable_lines, written.syllables_exact, written.syllable_poems_exact) == (
        2,
        2,
        1,
    )
    couplet = score_poem(
        ["The day is long", "I sing a song"], parse_form(rhyme="AA", syllables="4"), given=1
    )
    assert (couplet.rhyme_pairs, couplet.rhymed, couplet.syllable_lines) == (1, 1, 1)
    # The eval passes each case's first line as typed.
    cases = [EvalCase(0, haiku[0], 1), EvalCase(1, "", 2)]
    scored = score_poems("joy", "joy", [(c, "\n".join(haiku)) for c in cases], None, form="haiku")
    assert scored.form_score is not None
    assert scored.form_score["syllable_lines"] == 2 + 3
