"""A poem from nothing opens on a capital or an opening quote, never mid-word; a typed first line
is the writer's; when a rule leaves no such opening the preference yields and the poem writes."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from studio.core.generation.chain import Chain
from studio.core.generation.draw import Draw
from studio.core.generation.poet import Poet
from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.poem_opening import PoemOpening, first_flags
from studio.core.generation.settings import SamplingParams
from studio.core.generation.state import PoemState
from studio.core.loader import LoadedModel
from tests.helpers.models import ScriptedLM

pytestmark = pytest.mark.numerics

GREEDY: dict[str, Any] = {"temperature": 0.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


def scripted(poet: Poet, monkeypatch: pytest.MonkeyPatch, text: str, runner_up: str) -> LoadedModel:
    """Make `poet` write `text` then end (greedy), with the token `runner_up` ranked second."""
    real = poet.loader.load(poet.model_info("joy"))
    tokenizer = real.tokenizer
    script = [*tokenizer.encode(text, add_special_tokens=False), real.tokens.eos]
    (second,) = tokenizer.encode(runner_up, add_special_tokens=False)
    model = LoadedModel(
        info=real.info,
        module=ScriptedLM(script, second, real.exempt.shape[0]),
        tokenizer=tokenizer,
        context=real.context,
        exempt=real.exempt,
        tokens=real.tokens,
    )
    monkeypatch.setattr(poet.loader, "load", lambda info, on_progress=None: model)
    return model


def poem(poet: Poet, first_line: str = "") -> str:
    params = SamplingParams(strength=0.0, min_lines=1, **GREEDY)
    return "".join(poet.stream_poem("joy", first_line, params))


def test_a_poem_from_nothing_does_not_open_mid_word(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's first choice is the tail of a word ("eep"); the poem opens on its best capital
    instead, and every token after the first is the model's own."""
    scripted(poet, monkeypatch, "eep for the friend\n", runner_up="O")
    assert poem(poet) == "O for the friend\n"


def test_an_opening_quote_goes_on_with_a_capital(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quote may open the poem; the word after it starts with a capital, not mid-sentence."""
    scripted(poet, monkeypatch, '"thee lamps are out\n', runner_up="Th")
    assert poem(poet) == '"The lamps are out\n'


def test_a_typed_first_line_and_what_follows_it_are_untouched(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(poet, monkeypatch, "and the grey sea\n", runner_up="O")
    assert poem(poet, "o weep") == "o weep\nand the grey sea\n"


class NoCapitals(Processor):
    """A rule (it holds even relaxed) that masks every token that could open the poem."""

    def __init__(self, flags: tuple[bool, ...]) -> None:
        self.banned = torch.tensor(flags)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        return scores.masked_fill(self.banned, float("-inf"))


def joy_opening(poet: Poet) -> tuple[LoadedModel, tuple[bool, ...], int, int]:
    """The joy model, its opening flags, and the ids of a word's tail ("eep") and a capital."""
    model = poet.loader.load(poet.model_info("joy"))
    flags = first_flags(model.tokenizer, int(model.exempt.shape[0]))
    (tail,) = model.tokenizer.encode("eep", add_special_tokens=False)
    (capital,) = model.tokenizer.encode("O", add_special_tokens=False)
    return model, flags, tail, capital


def test_the_opening_yields_when_a_rule_leaves_no_capital(poet: Poet) -> None:
    model, flags, tail, capital = joy_opening(poet)
    rows = torch.zeros(1, len(flags))
    rows[0, tail], rows[0, capital] = 9.0, 1.0
    draw = SamplingParams(**GREEDY)

    def choose(*rules: Processor) -> int:
        state = PoemState([model.tokens.bos], model.exempt, model.tokens.eos)
        opening = PoemOpening(model.tokenizer, flags)
        return Chain([*rules, opening], Draw(draw, 0, torch.device("cpu"))).choose(state, rows)

    assert choose() == capital
    assert choose(NoCapitals(flags)) == tail


def test_a_line_written_again_from_the_poems_start_opens_again(poet: Poet) -> None:
    """Restored to its snapshot from before the first token, the opening masks again."""
    model, flags, tail, capital = joy_opening(poet)
    state = PoemState([model.tokens.bos], model.exempt, model.tokens.eos)
    opening = PoemOpening(model.tokenizer, flags)
    saved = opening.snapshot()
    opening.observe(state, capital)
    assert bool(torch.isfinite(opening.rescore(state, torch.zeros(len(flags)), False)[tail]))
    opening.restore(saved)
    assert not bool(torch.isfinite(opening.rescore(state, torch.zeros(len(flags)), False)[tail]))
