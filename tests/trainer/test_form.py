"""Form presets and the grammar of rhyme schemes, syllables and meters; bad input in one line."""

from __future__ import annotations

import pytest

from trainer.common.errors import PoetstudioError
from trainer.common.form import (
    PRESETS,
    check_line_limit,
    parse_form,
    parse_scheme,
    parse_syllables,
)


def test_free_is_today_free_verse() -> None:
    form = parse_form()
    assert form.is_free and form.name == "free"
    assert form.line_count is None and form.stanza_count is None and form.scheme is None
    assert form.lines() == [] and form.rhyme_pairs() == []
    target = form.line(5)
    assert (target.syllables, target.rhyme, target.meter) == (None, None, None)


def test_sonnet_targets_per_line() -> None:
    form = parse_form("sonnet")
    assert (form.line_count, form.stanza_count, form.stanza_sizes) == (14, 4, (4, 4, 4, 2))
    assert form.scheme == "ABAB CDCD EFEF GG"
    assert form.rhyme_pairs() == [(0, 2), (1, 3), (4, 6), (5, 7), (8, 10), (9, 11), (12, 13)]
    third, fourth, last = form.line(2), form.line(3), form.line(13)
    assert (third.rhyme, third.rhymes_with, third.syllables) == ("A", 0, (10, 10))
    assert third.meter == "0101010101"
    assert fourth.ends_stanza and fourth.stanza == 0
    assert not last.ends_stanza and last.stanza == 3 and last.rhymes_with == 12
    assert form.line(0).rhymes_with is None
    # 200 tokens cut a sonnet short; the budget gives every line room.
    assert form.token_budget() > 200


def test_presets() -> None:
    assert set(PRESETS) == {"free", "couplets", "quatrain", "ballad", "limerick", "sonnet", "haiku"}
    assert parse_form("couplets").rhyme_pairs() == [(0, 1), (2, 3)]
    assert parse_form("quatrain").rhyme_pairs() == [(0, 2), (1, 3)]
    ballad = parse_form("ballad")
    assert ballad.rhyme_pairs() == [(1, 3)]
    assert [t.syllables for t in ballad.lines()] == [(8, 8), (6, 6), (8, 8), (6, 6)]
    limerick = parse_form("limerick")
    assert limerick.rhyme_pairs() == [(0, 1), (2, 3), (0, 4)]
    assert [t.syllables for t in limerick.lines()] == [(8, 9), (8, 9), (5, 6), (5, 6), (8, 9)]
    haiku = parse_form("HAIKU")
    assert haiku.rhyme_pairs() == [] and haiku.line_count == 3
    assert [t.syllables for t in haiku.lines()] == [(5, 5), (7, 7), (5, 5)]


def test_scheme_grammar() -> None:
    assert parse_scheme(" abab  cdcd ") == (("A", "B", "A", "B"), ("C", "D", "C", "D"))
    assert parse_scheme("A-xA") == (("A", None, None, "A"),)
    form = parse_form(rhyme="AxA")
    assert form.name == "custom" and form.rhyme_pairs() == [(0, 2)]
    assert form.line(1).rhyme is None


def test_syllable_grammar_and_repeats() -> None:
    assert parse_syllables("10") == ((10, 10),)
    assert parse_syllables(" 8-9, 5 ,6-6") == ((8, 9), (5, 5), (6, 6))
    # A shorter list repeats over the scheme's lines.
    form = parse_form("quatrain", syllables="8,6")
    assert form.name == "quatrain (custom)"
    assert [t.syllables for t in form.lines()] == [(8, 8), (6, 6), (8, 8), (6, 6)]
    # Without a scheme the list repeats over however many lines the poem has.
    open_form = parse_form(syllables="5,7,5")
    assert open_form.line_count is None and not open_form.is_free
    assert [open_form.line(i).syllables for i in range(4)] == [(5, 5), (7, 7), (5, 5), (5, 5)]
    assert open_form.token_budget(lines=4) > 0
    with pytest.raises(ValueError):
        open_form.token_budget()


def test_meter_override_and_none() -> None:
    form = parse_form("quatrain", syllables="8", meter="Trochaic")
    assert form.meter == "trochaic" and form.line(0).meter == "10101010"
    assert parse_form("sonnet", meter="none").line(0).meter is None


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"name": "epic"}, "unknown form 'epic'"),
        ({"rhyme": "AB,AB"}, "','"),
        ({"rhyme": "ABAB1"}, "'1'"),
        ({"rhyme": "ÄB"}, "'Ä'"),
        ({"rhyme": "  "}, "empty"),
        ({"rhyme": "A" * 41}, "at most 40"),
        ({"syllables": "0"}, "out of range"),
        ({"syllables": "-3"}, "out of range"),
        ({"syllables": "31"}, "out of range"),
        ({"syllables": "ten"}, "not a count"),
        ({"syllables": "8-"}, "not a count"),
        ({"syllables": "9-8"}, "backwards"),
        ({"syllables": ""}, "empty"),
        ({"name": "sonnet", "syllables": "5,7,5"}, "do not fit the scheme's 14 lines"),
        ({"rhyme": "ABAB", "syllables": "1,2,3,4,5"}, "do not fit"),
        ({"meter": "spondaic"}, "unknown meter 'spondaic'"),
    ],
)
def test_bad_input_is_one_line(kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(PoetstudioError) as caught:
        parse_form(**kwargs)
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_a_line_limit_below_the_form_is_refused() -> None:
    sonnet = parse_form("sonnet")
    check_line_limit(sonnet, None)
    check_line_limit(sonnet, 14)
    check_line_limit(sonnet, 40)
    check_line_limit(parse_form(), 3)  # free verse has no count of its own
    with pytest.raises(PoetstudioError, match="limit of 8 lines conflicts with the sonnet"):
        check_line_limit(sonnet, 8)
