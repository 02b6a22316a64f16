"""Token-level form helpers: token kinds, the syllable budget mask and the rhyme-target trie,
on hand cases and on a tiny byte-level BPE tokenizer built here."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from transformers import PreTrainedTokenizerFast

from studio.core import formtokens as ft
from tests.helpers.models import EOT, VERSES
from trainer.common import phonetics
from trainer.common.form import parse_form

RHYMES = """the night is bright and full of light,
a kite in flight, a sight so white;
the day is grey, the bay, the way,
and stay, and say, and play, and may.
"""


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the tiny verses and a few rhymes."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [VERSES + RHYMES] * 20, vocab_size=500, min_frequency=1, special_tokens=[EOT]
    )
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOT, eos_token=EOT)


def _encoder(tokenizer: PreTrainedTokenizerFast) -> ft.Encode:
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


@pytest.mark.parametrize(
    ("text", "kind", "letters"),
    [
        (" the", ft.Kind.WORD, "the"),
        (" Night,", ft.Kind.WORD, "night"),
        (" don't", ft.Kind.WORD, "don't"),
        ("ing", ft.Kind.PIECE, "ing"),
        ("'s", ft.Kind.PIECE, "'s"),
        ("\n", ft.Kind.NEWLINE, ""),
        (",\n", ft.Kind.NEWLINE, ""),
        ("\n\n", ft.Kind.STANZA, ""),
        (".\n \n", ft.Kind.STANZA, ""),
        ("\n    ", ft.Kind.OTHER, ""),
        ("\nThe", ft.Kind.OTHER, ""),
        (",", ft.Kind.PUNCT, ""),
        ("  ", ft.Kind.PUNCT, ""),
        ("", ft.Kind.OTHER, ""),
        ("\ufffd", ft.Kind.OTHER, ""),
        (" caf\ufffd", ft.Kind.OTHER, ""),
        (" 42", ft.Kind.OTHER, ""),
        ("ab3", ft.Kind.OTHER, ""),
    ],
)
def test_classify(text: str, kind: ft.Kind, letters: str) -> None:
    assert ft.classify(text) == (kind, letters)


def test_table_from_texts() -> None:
    table = ft.TokenTable.from_texts([" the", " beautiful", "ly", "\n", ",", "7", " night."], [])
    assert table.kinds[1] is ft.Kind.WORD and table.syllables[1] == 3
    assert table.syllables[0] == 1 and table.syllables[2] == 1 and table.syllables[4] == 0
    assert table.ends_word == (False, False, False, False, False, False, True)
    assert table.ids_of(ft.Kind.NEWLINE, ft.Kind.PUNCT) == (3, 4) == ft.word_enders(table)
    assert len(table.padded(10)) == 10 and table.padded(10).kinds[9] is ft.Kind.UNUSED


def test_table_from_a_tokenizer(tokenizer: PreTrainedTokenizerFast) -> None:
    table = ft.TokenTable.from_tokenizer(tokenizer, vocab_size=len(tokenizer) + 3)
    assert len(table) == len(tokenizer) + 3
    assert table.kinds[tokenizer.eos_token_id] is ft.Kind.SPECIAL
    assert table.kinds[-1] is ft.Kind.UNUSED
    for token_id in range(len(tokenizer)):
        if token_id != tokenizer.eos_token_id:
            assert table.texts[token_id] == tokenizer.decode([token_id])
    night = tokenizer.encode(" night", add_special_tokens=False)
    assert len(night) == 1 and table.kinds[night[0]] is ft.Kind.WORD
    assert "night" in table.single_token_words and "the" in table.single_token_words
    assert all(len(w) > 1 or w in "aio" for w in table.single_token_words)
    encode = _encoder(tokenizer)
    assert ft.vocabulary_words(table, encode, limit=5) == list(table.single_token_words[:5])
    # Extra words join when the tokenizer spells them in few enough tokens.
    assert "nightingale" not in table.single_token_words
    pieces = len(encode(" nightingale"))
    assert "nightingale" in ft.vocabulary_words(table, encode, ["Nightingale"], pieces)
    assert "nightingale" not in ft.vocabulary_words(table, encode, ["nightingale"], pieces - 1)


def test_line_state_and_budget_step() -> None:
    state = ft.line_state("The fire of every")
    assert state.partial == "every" and state.done == {3, 4}  # the fire(1|2) of
    step = ft.budget_step(state, (10, 10))
    assert step.room == 5 and not step.can_end and not step.must_end and not step.at_boundary
    boundary = ft.line_state("The fire of every ")
    assert boundary.partial == "" and boundary.done == {5, 6, 7}
    met = ft.budget_step(ft.line_state("the night is long and dark and cold and,"), (9, 9))
    assert met.must_end and met.can_end and not met.punct_ok
    open_word = ft.budget_step(ft.line_state("the night is long and dark and cold and zzk"), (9, 9))
    assert open_word.word_open and open_word.must_end


def test_budget_mask_hand_cases() -> None:
    texts = [" the", " beautiful", "ly", "\n", ",", "7", " night", "<eos>", "light", "\n\n"]
    table = ft.TokenTable.from_texts(texts, special=[7])

    def allowed(step: ft.BudgetStep) -> list[str]:
        return [texts[i] for i, ok in enumerate(ft.budget_mask(table, step)) if ok]

    # Room for one syllable: one-syllable word starts (" beautiful" has three), punctuation, and
    # "ly", since at a boundary a piece starts a word; no newline, the count is 7 of 8. Never
    # digits or special tokens.
    step = ft.budget_step(ft.line_state("the night is long and dark and "), (8, 8))
    assert step.room == 1 and step.at_boundary
    assert allowed(step) == [" the", "ly", ",", " night", "light"]
    # Budget met after a known word: punctuation or the newline; "ly" would continue "cold".
    met = ft.budget_step(ft.line_state("the night is long and dark and cold"), (8, 8))
    assert allowed(met) == ["\n", ","]
    # The blank-line token ends a line only when the line ends its stanza.
    last = ft.budget_step(ft.line_state("the night is long and dark and cold"), (8, 8), True)
    assert allowed(last) == ["\n", ",", "\n\n"]
    # After the punctuation only the newline remains.
    after = ft.budget_step(ft.line_state("the night is long and dark and cold,"), (8, 8))
    assert allowed(after) == ["\n"]
    assert ft.budget_mask(table, after) is ft.budget_mask(table, after)  # cached
    # Short of the count a line cannot end; a range ends anywhere within it.
    short = ft.budget_step(ft.line_state("the night is long"), (6, 8))
    assert "\n" not in allowed(short)
    assert "\n" in allowed(ft.budget_step(ft.line_state("the night is long and dark"), (6, 8)))


def test_a_lone_letter_counts_for_nothing_and_must_go_on_spelling() -> None:
    texts = [" the", " f", "ire", "\n", ",", ".", " night"]
    table = ft.TokenTable.from_texts(texts)

    def allowed(line: str, target: int) -> list[str]:
        step = ft.budget_step(ft.line_state(line), (target, target))
        return [texts[i] for i, ok in enumerate(ft.budget_mask(table, step)) if ok]

    # "f" would have filled the fifth syllable (the dictionary reads it "eff") and ended the
    # haiku line "and f."; it is no word, so only its spelling may follow.
    assert allowed("he ruented, and f", 5) == ["ire"]
    assert allowed("he ruented, and fire", 5) == ["\n", ",", "."]
    # "a", "i" and "o" are words: "a" takes the fifth syllable, and the line may end.
    assert "\n" in allowed("he ruented, and o", 5)
    assert allowed("till fear's dread terror be qu", 7) == ["ire"]  # "qu" is no word either


def test_fragments_are_letters_that_are_no_word_yet() -> None:
    for fragment in ("f", "th", "st", "qu", "sh", "x"):
        assert ft.is_fragment(fragment), fragment
    for word in ("a", "i", "o", "my", "by", "thy", "quay", "th'", "o'er", "be", ""):
        assert not ft.is_fragment(word), word


def test_meter_mask_keeps_word_starts_on_the_beat() -> None:
    texts = [" the", " beautiful", " compare", " summer", "\n", "ly", "Summer"]
    table = ft.TokenTable.from_texts(texts)

    def fitting(positions: frozenset[int], at_boundary: bool = True) -> list[str]:
        mask = ft.meter_mask(table, positions, "01", at_boundary)
        return [texts[i] for i, ok in enumerate(mask) if ok]

    weak = ft.meter_positions("Shall I", "01")
    assert weak == {0}
    assert fitting(weak) == [" the", " compare", "\n", "ly"]
    strong = ft.meter_positions("Shall I compare thee to a", "01")
    assert strong == {1}
    assert fitting(strong) == [" the", " summer", "\n", "ly", "Summer"]
    # Inside a word, a letters-first piece continues it: the meter does not judge it.
    assert "ly" in fitting(strong, at_boundary=False) and "Summer" in fitting(weak, False)
    # A line that already broke the meter constrains nothing.
    assert ft.meter_positions("the beautiful", "01") == frozenset()
    assert fitting(frozenset()) == texts
    assert ft.meter_mask(table, weak, "01", True) is ft.meter_mask(table, weak, "01", True)


def test_rhyme_trie_over_tokenisations(tokenizer: PreTrainedTokenizerFast) -> None:
    encode = _encoder(tokenizer)
    trie = ft.RhymeTrie(["night", "delight", "kite", "night"], encode)
    assert trie and trie.words == ["night", "delight", "kite"]
    first, can_end = trie.step([])
    assert not can_end
    assert set(first) == {encode(" " + w)[0] for w in ("night", "delight", "kite")}
    ids = encode(" delight")
    for cut in range(len(ids)):
        allowed, _ = trie.step(ids[:cut])
        assert ids[cut] in allowed
    assert trie.step(ids) == ((), True) and trie.word_at(ids) == "delight"
    assert trie.step([tokenizer.eos_token_id]) == ((), False)
    assert not ft.RhymeTrie([], encode)


def _choose(rng: random.Random, ids: Sequence[int]) -> int:
    return ids[rng.randrange(len(ids))]


def test_budget_and_trie_write_lines_that_meet_the_form(tokenizer: PreTrainedTokenizerFast) -> None:
    """A random writer that may only pick what the masks allow ends every line on its syllable
    count with a word that rhymes with the target."""
    encode = _encoder(tokenizer)
    table = ft.TokenTable.from_tokenizer(tokenizer)
    vocabulary = ft.vocabulary_words(table, encode, extra=["delight", "tonight"], max_tokens=3)
    index = phonetics.RhymeIndex(vocabulary)
    rng = random.Random(7)
    for target_word, syllables in [("bright", 6), ("day", 8), ("sight", 5)] * 10:
        text = ""
        chosen: list[int] = []
        while True:
            state = ft.line_state(text)
            step = ft.budget_step(state, (syllables, syllables))
            # The rhyme word starts after a space, so it may come next whatever the line ends in.
            targets = ft.rhyme_targets(index, target_word, {step.room})
            if targets:
                trie = ft.RhymeTrie(targets, encode)
                while True:
                    allowed, can_end = trie.step(chosen)
                    if can_end:
                        break
                    chosen.append(_choose(rng, allowed))
                text += "".join(table.texts[i] for i in chosen)
                break
            mask = ft.budget_mask(table, step)
            # Leave room for the rhyme word: a word start that fits, but not all of what is left.
            starts = [
                i
                for i, ok in enumerate(mask)
                if ok and table.kinds[i] is ft.Kind.WORD and table.syllables[i] < step.room
            ]
            if step.fragment:  # a lone letter ("f"): it must go on spelling
                starts = [i for i, ok in enumerate(mask) if ok]
            token = _choose(rng, starts)
            text += table.texts[token]
        words = phonetics.words_of(text)
        assert syllables in phonetics.line_syllables(words), text
        assert phonetics.rhymes(words[-1], target_word), text


def test_form_position_follows_lines_stanzas_and_rhyme_targets() -> None:
    sonnet = parse_form("sonnet")
    start = ft.form_position("", sonnet)
    assert start.line.index == 0 and start.rhyme_word is None and not start.break_due
    # A typed first line that breaks the form still counts as line one and sets the A sound.
    typed = "My love is like a burning glimmerlight\nand"
    middle = ft.form_position(typed + " all", sonnet)
    assert middle.line.index == 1 and middle.text == "and all" and middle.rhyme_word is None
    third = ft.form_position(typed + " all the day\nthe ", sonnet)
    assert third.line.index == 2 and third.rhyme_word == "glimmerlight"
    quatrain_done = "a night\nthe day\nthe light,\nthe way\n"
    stanza = ft.form_position(quatrain_done, sonnet)
    assert stanza.line.index == 4 and stanza.break_due and stanza.rhyme_word is None
    after_break = ft.form_position(quatrain_done + "\n", sonnet)
    assert after_break.line.index == 4 and not after_break.break_due
    line_seven = quatrain_done + "\nthe sea\nthe stone\nthe "
    seventh = ft.form_position(line_seven, sonnet)
    assert seventh.line.index == 6 and seventh.rhyme_word == "sea"  # C: the 5th line's sound
    haiku = parse_form("haiku")
    assert ft.form_position("one\ntwo\nthree\n", haiku).finished
    assert not ft.form_position("one\ntwo\nthree", haiku).finished
    assert not ft.form_position("a\nb\nc\nd\n", parse_form()).finished
