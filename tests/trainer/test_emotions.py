"""EmoLex labelling: lowercased counts from the installed nrclex lexicon and the label rules."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from trainer.common.emotions import (
    EMOTIONS,
    MIXED,
    NEUTRAL,
    count_emotions,
    label_counts,
    lexicon,
)


def test_counts_are_lowercased_and_cover_all_eight():
    counts = count_emotions("Grief, GRIEF and grief!")
    assert list(counts) == list(EMOTIONS)
    raw = json.loads(resources.files("nrclex").joinpath("data/nrc_en.json").read_text())
    for emotion in EMOTIONS:
        assert counts[emotion] == 3 * (emotion in raw["grief"])
    assert counts["sadness"] == 3


def test_counts_match_nrclex_token_list_path_on_lowercased_tokens():
    from nrclex import NRCLex

    text = "The Lamps are out; O weep for the friend, his grave is cold. Joy! Hope and trust."
    ours = count_emotions(text)
    reference = NRCLex()
    tokens = [t.strip(".!") for t in text.lower().replace(";", " ").replace(",", " ").split()]
    reference.load_token_list(tokens)
    expected = {e: reference.raw_emotion_scores.get(e, 0) for e in EMOTIONS}
    assert ours == expected
    assert sum(ours.values()) > 0


def test_lexicon_holds_only_words_with_one_of_the_eight_emotions():
    table = lexicon()
    assert "grief" in table
    assert all(indexes for indexes in table.values())
    assert "abba" not in table  # positive only: no emotion
    assert 4000 < len(table) < 6468


def test_no_emotion_words_is_neutral():
    assert count_emotions("the of and 123") == dict.fromkeys(EMOTIONS, 0)
    assert label_counts(count_emotions("the of and")) == NEUTRAL


def test_unique_top_emotion_takes_the_label():
    counts = dict.fromkeys(EMOTIONS, 0) | {"sadness": 3, "fear": 2}
    assert label_counts(counts) == "sadness"


def test_ties_are_mixed():
    counts = dict.fromkeys(EMOTIONS, 0) | {"joy": 2, "trust": 2, "fear": 1}
    assert label_counts(counts) == MIXED


@pytest.mark.parametrize(("margin", "expected"), [(1, "sadness"), (2, "sadness"), (3, MIXED)])
def test_min_margin_sets_how_far_the_top_must_lead(margin, expected):
    counts = dict.fromkeys(EMOTIONS, 0) | {"sadness": 4, "fear": 2}
    assert label_counts(counts, min_margin=margin) == expected


def test_missing_emotions_count_as_zero():
    assert label_counts({"anger": 1}) == "anger"
