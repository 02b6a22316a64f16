"""The meter's soft cut: off-beat word starts lose a fixed amount, nothing else changes."""

from __future__ import annotations

import torch

from studio.core.formtokens import TokenTable
from studio.core.generation.processors.meter import METER_PENALTY, MeterAim
from studio.core.generation.state import PoemState
from trainer.common.form import parse_form

# " away" is weak-strong, " under" strong-weak, " walk" one syllable (free on either beat).
TEXTS = ["<s>", "\n", " away", " under", " walk", ","]
AWAY, UNDER, WALK = 2, 3, 4


def aim_after(text: str) -> torch.Tensor:
    state = PoemState([0], torch.zeros(len(TEXTS), dtype=torch.bool), eos=0)
    state.feed(text)
    aim = MeterAim(parse_form("sonnet"), TokenTable.from_texts(TEXTS, special=[0]), "01")
    return aim.rescore(state, torch.zeros(len(TEXTS)), relaxed=False)


def test_a_line_opening_off_the_iambic_beat_is_cut_and_only_that() -> None:
    scores = aim_after("When I do count the clock that tells the time\n")
    assert scores[UNDER] == -METER_PENALTY
    assert scores[AWAY] == 0 and scores[WALK] == 0
    assert scores[1] == 0 and scores[5] == 0  # breaks and punctuation are never cut


def test_the_beat_follows_the_words_already_on_the_line() -> None:
    # After one weak-strong word the next word starts on a weak beat again...
    scores = aim_after("When I do count the clock that tells the time\naway")
    assert scores[UNDER] == -METER_PENALTY and scores[AWAY] == 0
    # ...and after "walk" (one syllable) on the weak beat, it starts on a strong one.
    scores = aim_after("When I do count the clock that tells the time\nwalk")
    assert scores[UNDER] == 0 and scores[AWAY] == -METER_PENALTY


def test_a_form_without_a_meter_builds_no_aim() -> None:
    from studio.core.generation.processors import meter

    plan = type("Plan", (), {"form": parse_form("quatrain")})()
    assert meter.build(plan, None) is None  # type: ignore[arg-type]
