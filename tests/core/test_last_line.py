"""A fixed form's last line ends its sentence, on a vocabulary the test controls."""

from __future__ import annotations

import torch

from studio.core.formtokens import TokenTable
from studio.core.generation.processors.last_line import LastLine, ends_sentence
from studio.core.generation.state import PoemState

TOKENS = ["<s>", "</s>", "\n", ".\n", ",\n", ",", ".", "!", ";", "--", " air", "s", " and"]
EOS = 1
INF = float("-inf")


def rule() -> LastLine:
    return LastLine(4, TokenTable.from_texts(TOKENS, special=[0, 1]))


def state(text: str) -> PoemState:
    poem = PoemState([0], torch.zeros(len(TOKENS), dtype=torch.bool), EOS)
    poem.feed(text)
    return poem


def allowed(scores: torch.Tensor) -> set[str]:
    return {TOKENS[i] for i in range(len(TOKENS)) if torch.isfinite(scores[i])}


def scores(*tokens: str) -> torch.Tensor:
    """Scores where only `tokens` are allowed (as the form's rules before it leave them)."""
    values = torch.full((len(TOKENS),), INF)
    for token in tokens:
        values[TOKENS.index(token)] = 1.0
    return values


def test_where_the_last_line_must_end_only_a_full_stop_or_mark_may_come() -> None:
    last = state("one\ntwo\nthree\nand every air")
    # The rhyme is whole: the rules before leave closing marks and breaks.
    out = rule().rescore(last, scores(",", ".", "!", ";", "\n", ".\n", ",\n", "</s>", "s"), False)
    assert allowed(out) == {".", "!", ".\n"}


def test_where_a_word_may_still_come_the_last_line_may_not_break_off() -> None:
    last = state("one\ntwo\nthree\nand every")
    out = rule().rescore(last, scores(" air", ",", "\n", ",\n", ".\n", "</s>"), False)
    assert allowed(out) == {" air", ",", ".\n"}


def test_other_lines_ended_sentences_and_relaxed_steps_are_left_alone() -> None:
    everything = scores(*TOKENS[2:])
    for text in ("one\ntwo\nair", "one\ntwo\nthree\nand every air!", "one\ntwo\nthree\nair.'"):
        assert torch.equal(rule().rescore(state(text), everything.clone(), False), everything)
    last = state("one\ntwo\nthree\nand every air")
    assert torch.equal(rule().rescore(last, everything.clone(), True), everything)


def test_the_rule_leaves_nothing_once_then_yields_by_itself() -> None:
    last = state("one\ntwo\nthree\nand every air,")
    only_breaks = scores("\n", "</s>")
    # First nothing, so that the chain lets the choice leave the neutral nucleus, where a full
    # stop may be...
    assert not torch.isfinite(rule().rescore(last, only_breaks.clone(), False)).any()
    # ...and, that relaxed, still nothing: the rule yields alone, the form's rules hold.
    last.relax = 1
    assert torch.equal(rule().rescore(last, only_breaks.clone(), False), only_breaks)


def test_what_ends_a_sentence() -> None:
    assert ends_sentence("the air.") and ends_sentence('he said, "go!"') and ends_sentence("why?)")
    assert not ends_sentence("the air,") and not ends_sentence("air") and not ends_sentence("")


def test_a_full_stop_guidance_left_out_of_its_nucleus_still_ends_the_last_line() -> None:
    from studio.core.generation.chain import Chain
    from studio.core.generation.draw import Draw
    from studio.core.generation.processors.base import Processor
    from studio.core.generation.processors.guidance import Guidance
    from studio.core.generation.settings import SamplingParams

    class SpentLine(Processor):
        """As the syllable budget at a line's last syllable: no word may come."""

        def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
            for word in (" air", "s", " and"):
                scores[TOKENS.index(word)] = INF
            return scores

    last = state("one\ntwo\nthree\nand every air")
    # The emotion and neutral rows both put nearly everything on "," (the neutral nucleus is
    # "," alone); a full stop is possible, but outside it.
    rows = torch.full((2, len(TOKENS)), -30.0)
    rows[:, TOKENS.index(",")] = 10.0
    rows[:, TOKENS.index(".")] = 0.0
    processors = [Guidance([1.0], 1.0), SpentLine(), rule()]
    chain = Chain(processors, Draw(SamplingParams(), 0, torch.device("cpu")))
    assert TOKENS[chain.choose(last, rows)] == "."
