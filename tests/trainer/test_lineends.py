"""The shipped list of words verse ends its lines on: counted from texts, dictionary words only."""

from collections import Counter

from trainer.common.lineends import count_line_ends, line_ends, render


def test_line_ends_are_counted_from_each_lines_last_word() -> None:
    counts = count_line_ends(["The night is long,\nand bright the NIGHT!\n\n...", "o'er the sea"])
    assert counts == Counter({"night": 1, "long": 1, "sea": 1})


def test_the_list_keeps_dictionary_words_at_the_least_count_commonest_first() -> None:
    counts = Counter({"night": 9, "sea": 12, "glimmerwyrd": 50, "kite": 2})
    assert render(counts, min_count=3) == "sea 12\nnight 9\n"


def test_the_shipped_list_holds_common_line_ends_and_no_rare_ones() -> None:
    common = line_ends()
    assert common["night"] > common["kite"] >= 50
    assert "macaroon" not in common and "tablespoon" not in common
