"""Poem titles: the most striking line, by the documented rule."""

from __future__ import annotations

from studio.core.title import UNTITLED, title_for


def test_the_line_with_the_most_vivid_words_wins() -> None:
    poem = "and so it was\nthe glimmering lantern trembles over drowned harbours\nwe are here"
    assert title_for(poem) == "The glimmering lantern trembles over drowned harbours"


def test_ties_go_to_the_earlier_line() -> None:
    assert title_for("grey wind sings\ncold rain weeps") == "Grey wind sings"


def test_function_words_do_not_count() -> None:
    poem = "should there have been those which would\ndark roses"
    assert title_for(poem) == "Dark roses"


def test_long_lines_are_cut_with_an_ellipsis() -> None:
    poem = "silver moonlight wandering across forgotten meadows beneath ancient mountains tonight"
    assert title_for(poem) == "Silver moonlight wandering across forgotten meadows beneath…"


def test_punctuation_is_trimmed_and_markup_kept_literal() -> None:
    assert title_for("“O weeping willows, golden!”") == "O weeping willows, golden"
    assert title_for("[bold]burning[/] embers glowing") == "[bold]burning[/] embers glowing"


def test_no_words_means_untitled() -> None:
    assert title_for("") == UNTITLED
    assert title_for("\n\n...\n123\n") == UNTITLED


def test_a_poem_always_gets_the_title_the_rule_gives() -> None:
    # The second line scores 5 (grey, sighs, beneath counted twice, stars) against the first's 3,
    # and is cut at 7 words.
    poem = "The lamps are out along the quay,\nand the grey sea sighs beneath the stars."
    assert title_for(poem) == "And the grey sea sighs beneath the…"
    assert title_for(poem + "\n") == title_for("\n" + poem) == "And the grey sea sighs beneath the…"
