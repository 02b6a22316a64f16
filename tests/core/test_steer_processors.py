"""Co-writing's steering processors on the tiny model: a word to use, a word to rhyme with, a
topic word; and the checks on the words."""

from __future__ import annotations

from typing import Any

import pytest

from studio.core.cowrite.words import check_word, rhyme_notice
from studio.core.cowrite.writer import CoWriter
from studio.core.generation.poet import Poet
from studio.core.generation.processors.rhyme_with import RhymeWith, rhymes_with, spelled_ending
from studio.core.generation.processors.topic import TOPIC_BONUS, Topic
from studio.core.generation.processors.use_word import UseWord, determiners_for
from studio.core.generation.settings import SamplingParams
from studio.core.generation.steer import Steer
from studio.core.generation.vocabulary import encoder, token_table
from trainer.common import phonetics
from trainer.common.errors import PoetstudioError

FIRST_LINE = "The lamps are out along the quay"


@pytest.fixture
def writer(poet: Poet) -> CoWriter:
    return CoWriter(poet, "joy", SamplingParams(seed=11), [FIRST_LINE])


@pytest.mark.parametrize("word", ["grave", "lamps", "wind"])
def test_every_candidate_uses_the_word(writer: CoWriter, word: str) -> None:
    plain = writer.write(8)
    assert sum(word in phonetics.words_of(c.text) for c in plain) < 8, "not by luck"
    steered = writer.write(8, Steer(use=word))
    assert all(word in phonetics.words_of(c.text) for c in steered), [c.text for c in steered]


def test_every_candidate_ends_on_a_rhyme(writer: CoWriter) -> None:
    plain = writer.write(8)
    assert not all(
        phonetics.words_of(c.text) and phonetics.rhymes(phonetics.words_of(c.text)[-1], "sea")
        for c in plain
    )
    for candidate in writer.write(8, Steer(rhyme_with="sea")):
        last = phonetics.words_of(candidate.text)[-1]
        assert phonetics.rhymes(last, "sea"), candidate.text


def test_a_topic_pulls_its_word_up_without_forcing_it(writer: CoWriter) -> None:
    import torch

    model = writer.poet.backend.load(writer.poet.model_info("joy"))
    topic = Topic("grave", lambda text: model.tokenizer.encode(text, add_special_tokens=False))
    scores = torch.zeros(model.exempt.shape[0])

    class Line:
        line = "the night is"

    pulled = topic.rescore(Line(), scores.clone(), False)  # type: ignore[arg-type]
    first = model.tokenizer.encode(" grave", add_special_tokens=False)[0]
    assert float(pulled[first]) == TOPIC_BONUS
    assert int((pulled != 0).sum()) == len(topic.mid)
    Line.line = "the grave is"
    assert torch.equal(topic.rescore(Line(), scores.clone(), False), scores)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--use needs a word; it was empty"),
        ("  ", "--use needs a word; it was empty"),
        ("two words", "--use takes one word, not 2"),
        ("123", "--use needs a word with letters"),
        ("sea!", "--use takes a word of letters only"),
    ],
)
def test_a_bad_steering_word_is_a_one_line_error(text: str, message: str) -> None:
    with pytest.raises(PoetstudioError, match=message):
        check_word("--use", text)


def test_steering_words_are_kept_lowercase() -> None:
    assert check_word("--use", " Lantern ") == "lantern"
    assert check_word("--use", "o'er") == "o'er"
    assert check_word("--use", None) is None


def test_a_rhyme_word_outside_the_dictionary_rhymes_by_spelling() -> None:
    assert rhyme_notice("night") is None
    assert "rhyming by spelling" in (rhyme_notice("qzzax") or "")
    assert spelled_ending("qzzax") == "ax"
    assert rhymes_with("wax", "qzzax") and not rhymes_with("wane", "qzzax")
    assert rhymes_with("light", "night") and not rhymes_with("night", "night")


class _Line:
    """The state a processor reads: the line being written."""

    def __init__(self, line: str) -> None:
        self.line = line


@pytest.fixture
def tiny_model(writer: CoWriter) -> Any:
    return writer.poet.backend.load(writer.poet.model_info("joy"))


def _use(model: Any, word: str) -> UseWord:
    return UseWord(word, token_table(model), encoder(model))


def _token(model: Any, text: str) -> int:
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == 1, (text, ids)
    return int(ids[0])


def _allowed(scores: Any) -> set[int]:
    return {int(i) for i in (scores > float("-inf")).nonzero().flatten()}


def test_a_used_word_is_not_tacked_on_after_a_full_stop(tiny_model: Any) -> None:
    import torch

    use = _use(tiny_model, "grave")
    scores = torch.zeros(tiny_model.exempt.shape[0])
    scores[_token(tiny_model, "\n")] = 5.0  # the model would end the line here
    starts, _ = use.mid.step([])
    rescored = use.rescore(_Line("the lamps are out."), scores, False)  # type: ignore[arg-type]
    assert _allowed(rescored) - set(starts), "the word is not forced right after the full stop"
    assert float(rescored[_token(tiny_model, "\n")]) == float("-inf"), "nor may the line end"


def test_a_line_waiting_for_its_word_closes_no_sentence(tiny_model: Any) -> None:
    import torch

    use = _use(tiny_model, "grave")
    scores = torch.zeros(tiny_model.exempt.shape[0])
    scores[list(use.mid.step([])[0])] = -20.0  # the word does not fit here
    rescored = use.rescore(_Line("the night is"), scores, False)  # type: ignore[arg-type]
    assert float(rescored[_token(tiny_model, ".")]) == float("-inf")
    assert float(rescored[_token(tiny_model, ",")]) != float("-inf")
    assert float(use.rescore(_Line("the grave is"), scores, False)[_token(tiny_model, ".")]) == 0


def test_a_used_word_comes_right_after_a_determiner(tiny_model: Any) -> None:
    import torch

    use = _use(tiny_model, "grave")
    scores = torch.zeros(tiny_model.exempt.shape[0])
    starts, _ = use.mid.step([])
    rescored = use.rescore(_Line("I walked into the"), scores, False)  # type: ignore[arg-type]
    assert _allowed(rescored) == set(starts)
    assert determiners_for("apple").count("a") == 0 and "an" in determiners_for("apple")
    assert "an" not in determiners_for("grave")


def test_a_word_forced_after_punctuation_does_not_end_the_line(tiny_model: Any) -> None:
    import torch

    use = _use(tiny_model, "grave")
    scores = torch.zeros(tiny_model.exempt.shape[0])
    scores[_token(tiny_model, "\n")] = 5.0
    late = "and we walked and we sang and we wept and we ran,"
    forced = use.rescore(_Line(late), scores, False)  # type: ignore[arg-type]
    starts, _ = use.mid.step([])
    assert _allowed(forced) == set(starts)
    spelled: list[int] = []
    while not use.mid.step(spelled)[1]:  # spell the word to its end
        token = min(_allowed(use.rescore(_Line(late), scores, False)))  # type: ignore[arg-type]
        spelled.append(token)
        use.observe(_Line(late), token)  # type: ignore[arg-type]
    after = use.rescore(_Line(late + " grave"), scores, False)  # type: ignore[arg-type]
    assert float(after[_token(tiny_model, "\n")]) == float("-inf"), "the line goes on"
    assert float(after[_token(tiny_model, ",")]) == float("-inf")


def test_a_line_rhyming_with_a_word_closes_no_sentence_before_its_rhyme(tiny_model: Any) -> None:
    import torch

    rhyme = RhymeWith("sea", None, token_table(tiny_model), encoder(tiny_model))
    scores = torch.zeros(tiny_model.exempt.shape[0])
    rescored = rhyme.rescore(_Line("the night is"), scores, False)  # type: ignore[arg-type]
    assert float(rescored[_token(tiny_model, ".")]) == float("-inf")


def test_a_rhyme_comes_after_a_whole_word_where_the_model_ranks_it_high(tiny_model: Any) -> None:
    import torch

    rhyme = RhymeWith("sea", None, token_table(tiny_model), encoder(tiny_model))
    scores = torch.zeros(tiny_model.exempt.shape[0])
    scores[_token(tiny_model, ",")] = 1.0  # the model would not end the line here
    line = "the night is dark and"
    rescored = rhyme.rescore(_Line(line), scores, False)  # type: ignore[arg-type]
    assert rhyme.offered and _allowed(rescored) == set(rhyme.offered)
    starts = list(rhyme.offered)
    scores[starts] = -20.0  # no rhyme fits here: the line goes on
    rescored = rhyme.rescore(_Line(line), scores, False)  # type: ignore[arg-type]
    assert _allowed(rescored) - set(starts)
    scores[starts] = 0.0
    after_comma = rhyme.rescore(_Line(line + ","), scores, False)  # type: ignore[arg-type]
    assert _allowed(after_comma) - set(rhyme.offered), "not right after punctuation"


@pytest.mark.parametrize("line", ["Ż", "the é"])
def test_a_line_ending_in_a_letter_outside_the_dictionary_is_not_cut_by_the_word(
    tiny_model: Any, line: str
) -> None:
    """A byte-level tokenizer can write any letter; one the dictionary has no words in ends no
    word, so the line is mid-word there and the word is not forced on it."""
    import torch

    use = _use(tiny_model, "grave")
    scores = torch.zeros(tiny_model.exempt.shape[0])
    rescored = use.rescore(_Line(line), scores, False)  # type: ignore[arg-type]
    assert _allowed(rescored) - set(use.mid.step([])[0]), "the word is not forced mid-word"


def _rhyme_with(word: str, texts: list[str]) -> Any:
    """`RhymeWith` over a vocabulary of `texts`, and what it allows after a line."""
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.processors.rhyme import MAX_WORDS_BEFORE_RHYME

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    rhyme = RhymeWith(word, None, TokenTable.from_texts(texts), encode)

    def allowed(line: str = "walk" + " walk" * (MAX_WORDS_BEFORE_RHYME - 1)) -> set[str]:
        scores = torch.zeros(len(texts))
        scores[texts.index("\n")] = 5.0  # the model would end the line
        rescored = rhyme.rescore(_Line(line), scores, False)  # type: ignore[arg-type]
        return {texts[i] for i in range(len(texts)) if rescored[i] != float("-inf")}

    return allowed


def test_a_word_to_rhyme_with_takes_no_echo_and_a_slant_rhyme_where_none_is_perfect() -> None:
    assert _rhyme_with("night", [" walk", " knight", " light", "\n"])() == {" light"}
    window = _rhyme_with("window", [" walk", " sing", " pillow", " billow", "\n"])
    assert window() == {" pillow", " billow"}
    # "place" has only an echo ("replace"): a slant rhyme, rather than none.
    echoed = _rhyme_with("place", [" walk", " replace", " place", " gaze", " days", " sing", "\n"])
    assert echoed() == {" gaze", " days"}
    assert _rhyme_with("bridge", [" walk", " ridge", " bridge", " pledge", "\n"])() == {" ridge"}


def test_a_function_word_that_rhymes_does_not_end_a_line_rhyming_with_a_word() -> None:
    allowed = _rhyme_with("sea", [" walk", " the", " free", " we", "\n"])
    assert phonetics.rhymes("the", "sea")
    assert allowed("walk walk walk walk the") == {" free", " we"}
