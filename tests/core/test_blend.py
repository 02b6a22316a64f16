"""Parsing emotion blends: `joy`, `joy+sadness`, `joy=0.7+sadness=0.3`."""

from __future__ import annotations

import pytest

from studio.core.blend import blend_choices, parse_blend
from trainer.common.errors import PoetstudioError


def test_one_emotion_is_a_blend_of_one() -> None:
    blend = parse_blend(" Joy ")
    assert blend.parts == (("joy", 1.0),)
    assert blend.spec == "joy" and blend.is_single and blend.primary == "joy"
    assert parse_blend("neutral").spec == "neutral"


def test_equal_weights_by_default_and_weights_are_normalised() -> None:
    assert parse_blend("joy+sadness").parts == (("joy", 0.5), ("sadness", 0.5))
    blend = parse_blend("joy=0.7 + sadness=0.3")
    assert blend.emotions == ("joy", "sadness")
    assert blend.weights == pytest.approx((0.7, 0.3))
    assert blend.spec == "joy=0.70+sadness=0.30"
    scaled = parse_blend("fear=3+anger=1")
    assert scaled.weights == pytest.approx((0.75, 0.25)) and scaled.primary == "fear"
    assert parse_blend(scaled.spec) == scaled, "the canonical spec parses back to the same blend"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("joy+happy", "unknown emotion 'happy'"),
        ("joy+neutral", "neutral cannot be blended"),
        ("joy+joy", "joy appears twice"),
        ("joy=0+sadness", "must be a positive number"),
        ("joy=-1+sadness", "must be a positive number"),
        ("joy=abc+sadness", "must be a positive number"),
        ("joy=nan+sadness", "must be a positive number"),
        ("joy=inf+sadness", "must be a positive number"),
        ("joy+", "empty part"),
        ("../x+joy", "path-like"),
    ],
)
def test_bad_blends_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(PoetstudioError, match=message) as caught:
        parse_blend(text)
    assert "\n" not in str(caught.value)


def test_blends_mix_the_eight_emotions() -> None:
    assert len(blend_choices()) == 8 and "neutral" not in blend_choices()
