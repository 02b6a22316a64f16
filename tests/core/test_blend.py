"""Parsing emotion blends: `joy`, `joy+sadness`, `joy=0.7+sadness=0.3`."""

from __future__ import annotations

from pathlib import Path

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


# ----- weights are the user's numbers, parsed once ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "shares"),
    [
        ("joy=1+sadness=300", (1 / 301, 300 / 301)),
        ("joy=0.006+sadness=1", (0.006 / 1.006, 1 / 1.006)),
        ("joy=1+sadness=999", (1 / 1000, 999 / 1000)),
        ("joy+sadness+fear", (1 / 3, 1 / 3, 1 / 3)),
        ("joy=3.+sadness=.5", (3 / 3.5, 0.5 / 3.5)),
    ],
)
def test_the_canonical_spec_means_what_was_asked_and_parses_back_to_itself(
    text: str, shares: tuple[float, ...]
) -> None:
    blend = parse_blend(text)
    # Within 0.5% of each share asked for, and the weights sum to 1.
    assert blend.weights == pytest.approx(shares, rel=0.005)
    assert sum(blend.weights) == pytest.approx(1.0, abs=1e-12)
    again = parse_blend(blend.spec)
    assert again == blend and again.spec == blend.spec


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("joy=0.006+sadness=0.994", "joy=0.006+sadness=0.994"),
        ("joy=1+sadness=300", "joy=0.00332+sadness=0.99668"),
        ("joy=70+sadness=30", "joy=0.70+sadness=0.30"),
        ("joy=0.5+sadness=0.5", "joy=0.50+sadness=0.50"),
    ],
)
def test_the_spec_keeps_the_decimals_the_weights_need(text: str, spec: str) -> None:
    assert parse_blend(text).spec == spec


def test_every_spec_of_a_grid_of_weights_parses_back_to_the_same_blend() -> None:
    values = ("0.004", "0.01", "0.1", "0.3", "1", "2.5", "3", "7", "33", "999")
    for a in values:
        for b in values:
            for c in (None, "1", "0.05"):
                text = f"joy={a}+sadness={b}" + (f"+fear={c}" if c else "")
                try:
                    blend = parse_blend(text)
                except PoetstudioError as exc:
                    assert "too little to matter" in str(exc), text
                    continue
                assert parse_blend(blend.spec) == blend, text
                assert parse_blend(blend.spec).spec == blend.spec, text


@pytest.mark.parametrize(
    "weight",
    ["٣", "1_0", "1e308", "1e3", "0x10", "1.2.3", "１", "½", " ", "1,5", "-0.5", "١.٥", "⁵"],
)
def test_weights_are_plain_ascii_decimals(weight: str) -> None:
    text = f"joy={weight}+sadness=1"
    with pytest.raises(PoetstudioError, match="must be a positive number") as caught:
        parse_blend(text)
    assert repr(text) in str(caught.value), "the error quotes the text as typed"


def test_huge_weights_are_refused_on_the_users_own_numbers() -> None:
    for text, quoted in (
        ("joy=1001+sadness=1", "weight '1001' for joy"),
        (f"joy={'9' * 308}+sadness={'9' * 308}", "over 32 characters"),
    ):
        with pytest.raises(PoetstudioError, match=quoted) as caught:
            parse_blend(text)
        assert repr(text) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("joy=1+sadness=1000", "weight '1' for joy in 'joy=1+sadness=1000'"),
        ("joy+sadness=0.0001", "weight '0.0001' for sadness in 'joy+sadness=0.0001'"),
        ("joy=1000+sadness", "weight 1 (the default) for sadness in 'joy=1000+sadness'"),
    ],
)
def test_a_weight_too_small_to_matter_is_refused_quoting_what_was_typed(
    text: str, quoted: str
) -> None:
    with pytest.raises(PoetstudioError, match="too little to matter") as caught:
        parse_blend(text)
    assert quoted in str(caught.value) and "\n" not in str(caught.value)


def test_a_hard_blend_survives_the_poems_file(tmp_path: Path) -> None:
    from studio.core.poemfile import append_poem, read_poems, saved_poem

    blend = parse_blend("joy=1+sadness=300")
    path = tmp_path / "poems.md"
    append_poem(
        path,
        saved_poem(
            "The sea\nis grey",
            blend.spec,
            first_line="The sea",
            model="tiny",
            sampling={},
            seed=1,
            strength=1.0,
        ),
    )
    (poem,) = read_poems(path)
    assert poem.emotion == blend.spec and parse_blend(poem.emotion) == blend
