"""Form measures for eval: rhyme, syllable and meter accuracy on hand-checked poems."""

from __future__ import annotations

from trainer.common.form import parse_form
from trainer.evaluation.formscore import last_word, poem_lines, pool, score_poem, score_poems

QUATRAIN = """The lamp is low beside the door,
and all the hills are cold and grey;
I hear the sea along the shore,
it carries every word away."""

HAIKU = """An old silent pond
a frog jumps into the pond
splash! silence again"""


def test_a_rhyming_quatrain_scores_full() -> None:
    score = score_poem(poem_lines(QUATRAIN), parse_form("quatrain"))
    assert (score.rhyme_pairs, score.rhymed, score.rhyme_accuracy) == (2, 2, 1.0)
    assert score.oov_pairs == 0 and score.oov_rhyme_accuracy is None
    assert score.syllable_lines == 0 and score.syllable_accuracy is None
    assert score.meter_accuracy is None


def test_rhyme_misses_identity_and_missing_lines() -> None:
    lines = ["I walk into the night", "the river runs", "and walk into the night"]
    score = score_poem(lines, parse_form("quatrain"))
    # (0, 2) ends night/night: the same word is no rhyme; (1, 3) misses its fourth line.
    assert (score.rhyme_pairs, score.rhymed) == (2, 0)


def test_oov_pairs_are_counted_apart() -> None:
    lines = ["the glimmerlight", "and the zzkrt", "it burns all night", "the dark"]
    score = score_poem(lines, parse_form("quatrain"))
    assert (score.oov_pairs, score.oov_rhymed) == (2, 1)  # glimmerlight/night borrows "light"
    assert score.rhyme_pairs == 0 and score.rhyme_accuracy is None


def test_syllables_exact_near_and_haiku_poems() -> None:
    haiku = parse_form("haiku")
    score = score_poem(poem_lines(HAIKU), haiku)
    # 5 (an old si-lent pond), 7, then "splash silence again" is 5.
    assert (score.syllable_lines, score.syllables_exact, score.syllables_near) == (3, 3, 3)
    assert score.poems_exact == 1.0
    off = score_poem(["An old silent pond", "a frog jumps into", "splash"], haiku)
    # 5 exact; "a frog jumps in-to" is 5 of 7 (a miss); "splash" is 1 of 5 (a miss).
    assert (off.syllables_exact, off.syllables_near, off.poems_exact) == (1, 1, 0.0)
    longer = score_poem([*poem_lines(HAIKU), "and one line more"], haiku)
    assert longer.syllables_exact == 3 and longer.poems_exact == 0.0


def test_a_word_with_several_pronunciations_meets_either_count() -> None:
    form = parse_form(syllables="4")
    # the(1) fire(1|2) burns(1): 3 or 4.
    score = score_poem(["the fire burns"], form)
    assert score.syllables_exact == 1
    near = score_poem(["the sun"], form)
    assert (near.syllables_exact, near.syllables_near) == (0, 0)
    assert score_poem(["the red sun"], form).syllables_near == 1


def test_iambic_meter_share() -> None:
    form = parse_form("sonnet")
    lines = [
        "Shall I compare thee to a summer's day?",
        "Thou art more lovely and more temperate:",
        "Double double toil and trouble burning",
    ]
    score = score_poem(lines, form)
    # A sonnet has 14 lines: the 11 missing lines count as misses.
    assert score.meter_lines == 14
    assert score.meter_matched == 2


def test_pool_and_to_dict() -> None:
    quatrain = parse_form("quatrain")
    pooled = score_poems([poem_lines(QUATRAIN), ["stone", "fish", "hill", "cup"]], quatrain)
    assert pooled.poems == 2 and (pooled.rhyme_pairs, pooled.rhymed) == (4, 2)
    assert pooled.rhyme_accuracy == 0.5
    assert pool([]).poems == 0
    report = pooled.to_dict()
    assert report["rhyme_accuracy"] == 0.5 and report["poems"] == 2


def test_last_word() -> None:
    assert last_word("and all the hills are grey; ") == "grey"
    assert last_word("— 1914 —") is None


def test_slant_rhymes_count_only_when_asked() -> None:
    lines = ["I give you all my love", "the river runs", "and all the ways we move", "to suns"]
    quatrain = parse_form("quatrain")
    assert score_poem(lines, quatrain).rhymed == 1  # runs/suns
    assert score_poem(lines, quatrain, slant=True).rhymed == 2  # love/move: same final V


def test_line_marks_give_each_line_its_count_letter_and_miss_by_the_scores_rules() -> None:
    from trainer.evaluation.formscore import LineMark, line_marks

    lines = ["The night is cold and long", "I walk along the sea", "My heart is full of song"]
    lines.append("the stars are dim")
    assert line_marks(lines, parse_form("quatrain", syllables="6")) == [
        LineMark(6, "A", False),
        LineMark(6, "B", False),
        LineMark(6, "A", False),
        LineMark(4, "B", True),  # neither 6 syllables nor a rhyme for "sea"
    ]
    # Several pronunciations: "fire" is 1 or 2 syllables, shown as the count nearest the target.
    assert line_marks(["the fire"], parse_form("free", syllables="3")) == [LineMark(3, None, False)]
