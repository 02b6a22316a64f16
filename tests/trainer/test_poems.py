"""Poem splits: the seed's autocompose split reproduced exactly, and the clean default."""

from __future__ import annotations

from trainer.corpus.poems import MAX_LINES, MIN_LINES, split_autocompose, split_clean
from trainer.corpus.sources import Corpus, ReadReport, SourceInfo


def _corpus(lines: list[str], gids: list[str | None] | None = None, marked: bool = False):
    gids = gids if gids is not None else [None] * len(lines)
    return Corpus(lines, gids, SourceInfo("path", "x", "0" * 64, len(lines)), ReadReport(), marked)


def _seed(lines: list[str]) -> list[str]:
    """The seed's own steps, written out literally."""
    content = ""
    for line in lines:
        content += line + "\n"
    poems = content.split(".\n")
    poems = [p + "." for p in poems if len(p.split("\n")) > 2]
    return [p for p in poems if len(p.split()) < 100]


SEED_LINES = [
    "Half a league, half a league,",
    "Half a league onward,",
    "All in the valley of Death.",
    "Rode the six hundred.",
    "Forward, the Light Brigade!",
    "Charge for the guns! he said:",
    "Into the valley of Death",
    "Rode the six hundred.",
    "one.",
    "two",
    "three.",
    " word" * 120,
    "long",
    "longer.",
    "tail without a stop",
]


def test_autocompose_matches_the_seed_exactly():
    chunks, stats = split_autocompose(_corpus(SEED_LINES))
    assert [c.text for c in chunks] == _seed(SEED_LINES)
    assert stats.chunks == 7
    assert stats.removed == {"2 lines or fewer": 4, "100 words or more": 1}
    assert stats.kept == len(chunks) == 2
    assert chunks[0].lines == 3
    assert chunks[1].text.endswith("Rode the six hundred.")


def test_autocompose_keeps_a_book_id_only_when_a_chunk_stays_in_one_book():
    lines = ["a", "b", "c.", "d", "e", "f."]
    chunks, _ = split_autocompose(_corpus(lines, ["1", "1", "1", "1", "2", "2"]))
    assert [c.gid for c in chunks] == ["1", None]


def _verse(n: int, stop: str = ".") -> list[str]:
    body = [f"and the {w} wind was in the trees of night" for w in "abcdefghijklmnopqrstuvwxyz"]
    return body[: n - 1] + [f"and so the song of the winds was ended{stop}"]


def test_clean_never_crosses_a_book_boundary():
    lines = _verse(3, stop=",") + _verse(5)
    gids = ["1"] * 3 + ["2"] * 5
    chunks, stats = split_clean(_corpus(lines, gids))
    assert [c.gid for c in chunks] == ["2"]
    assert stats.removed["too short"] == 1


def test_clean_closes_at_a_sentence_end_once_long_enough():
    lines = ["My heart is sad.", *_verse(4, stop="!"), *_verse(4, stop='."')]
    chunks, _ = split_clean(_corpus(lines))
    assert [c.lines for c in chunks] == [5, 4]
    assert chunks[0].text.startswith("My heart is sad.\n")


def test_clean_drops_gutenberg_noise_lines_and_strips_markers():
    lines = [
        "CANTO THE FIRST.",
        "The weary sun hath made a golden set,(12)",
        "And by the _bright_ track of his fiery car",
        "   [This stanza was added in the second edition.]",
        "Gives signal of a goodly day to-morrow, 1795.",
        "[Footnote: see above.]",
        "Gives token of a goodly day to-morrow.",
        "INTRODUCTION          page xi",
        "A simile* for womankind, *[Footnote: read it as three syllables",
        "and not as smile.]",
    ]
    lines = lines + _verse(4)
    chunks, stats = split_clean(_corpus(lines))
    text = "\n".join(c.text for c in chunks)
    assert "CANTO" not in text and "[" not in text and "1795" not in text and "(12)" not in text
    assert "And by the bright track" not in text  # its chunk was cut to 2 lines by the notes
    assert "page xi" not in text and "simile" not in text and "smile" not in text
    assert stats.lines_dropped == {"note": 4, "layout": 1, "digits": 1, "heading": 1, "empty": 0}
    assert stats.lines_cleaned == {"footnote marker": 1, "underscore": 1}


def test_clean_removes_non_english_duplicates_and_lengths_with_counts():
    latin = [
        "Arma virumque cano, Troiae qui primus ab oris",
        "Italiam, fato profugus, Laviniaque venit",
        "litora, multum ille et terris iactatus et alto",
        "vi superum saevae memorem Iunonis ob iram.",
    ]
    greek = ["Μῆνιν ἄειδε θεὰ Πηληϊάδεω Ἀχιλῆος"] * 3 + ["οὐλομένην, ἣ μυρί᾽ Ἀχαιοῖς ἄλγε᾽ ἔθηκε."]
    prose = [
        "The following poem was written in the summer of the year, when the author was",
        "living by the sea and the long evenings gave him the leisure to compose it at",
        "his ease, and it is printed here as it first appeared in the magazine, without",
        "any of the corrections that the author made in later years for the collection.",
    ]
    wrapped = [
        "It has been observed that epic poetry, which is collective and",
        "objective in its nature, always reaches its full development in",
        "a nation sooner than lyric poetry, which is individual and",
        "subjective, and so it is here.",
    ]
    poem = _verse(4)
    spaced_duplicate = [line.replace(" ", "  ", 1).capitalize() for line in poem]
    too_long = _verse(MAX_LINES + 1)
    lines = (
        latin + greek + prose + wrapped + poem + spaced_duplicate + too_long + _verse(MIN_LINES + 1)
    )
    chunks, stats = split_clean(_corpus(lines))
    assert stats.removed == {
        "too short": 0,
        "too long": 1,
        "prose": 2,
        "not English": 2,
        "duplicate": 1,
    }
    assert stats.kept == len(chunks) == 2
    assert stats.chunks == 8


def test_clean_keeps_marked_poems_whole():
    lines = ["Sad I am.", "So sad.", "Very sad.", "Sad, sad, sad!", "The end of it."]
    chunks, _ = split_clean(_corpus(lines, ["p#1"] * 5, marked=True))
    assert len(chunks) == 1
    assert chunks[0].lines == 5
