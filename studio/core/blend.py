"""Emotion blends: what a poem is asked to feel, as one emotion or a weighted mix of several.

A blend is written `joy+sadness` (equal weights) or `joy=0.7+sadness=0.3`; weights are relative
and normalised to sum to 1. A single emotion, `joy` or `neutral`, is a blend of one. Neutral cannot
be mixed in: it is the reference every emotion is guided away from.

The user's text is parsed once, exactly (as fractions), and checked on the numbers the user typed.
The canonical spec (`joy=0.70+sadness=0.30`) is what records, stats and the CLI carry and what the
generation core parses again, so it must mean what was asked and parse back to itself: its shares
are decimals that sum to exactly 1, each within 0.5% of the share asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL, check_emotion
from trainer.common.errors import PoetstudioError

# A weight is a plain decimal in ASCII digits: no sign, exponent, underscore or other script's
# digits (`[0-9]`, unlike `\d` or float(), matches only ASCII).
_WEIGHT = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
# Long enough for any sensible weight; keeps int conversion of the digits cheap and in range.
MAX_WEIGHT_CHARS = 32
# Weights are relative, so a bound only stops nonsense such as 1e308 spelled out in digits.
MAX_WEIGHT = Fraction(1000)
# A smaller share changes nothing a reader could tell; refuse it rather than pretend.
MIN_SHARE = Fraction(1, 1000)
# Canonical shares have 2 to _MAX_PLACES decimals; at _MAX_PLACES every share of at least
# MIN_SHARE is within _TOLERANCE of what was asked.
_MIN_PLACES = 2
_MAX_PLACES = 6
_TOLERANCE = Fraction(1, 200)


@dataclass(frozen=True)
class Blend:
    """Emotions and their weights, normalised to sum to 1, in the order they were given."""

    parts: tuple[tuple[str, float], ...]

    @property
    def emotions(self) -> tuple[str, ...]:
        """The emotions in the blend."""
        return tuple(emotion for emotion, _ in self.parts)

    @property
    def weights(self) -> tuple[float, ...]:
        """The normalised weights, in the order of `emotions`."""
        return tuple(weight for _, weight in self.parts)

    @property
    def primary(self) -> str:
        """The emotion with the largest weight (the first one given, on a tie)."""
        return max(self.parts, key=lambda part: part[1])[0]

    @property
    def is_single(self) -> bool:
        """Whether the blend is one emotion alone."""
        return len(self.parts) == 1

    @property
    def spec(self) -> str:
        """The canonical text form: `joy` alone, else `joy=0.70+sadness=0.30`.

        Weights get the fewest decimals (at least 2) that write every weight exactly; a blend
        from `parse_blend` always has such weights, so its spec parses back to the same blend.
        """
        if self.is_single:
            return self.parts[0][0]
        places = next(
            (
                p
                for p in range(_MIN_PLACES, _MAX_PLACES + 1)
                if all(float(f"{w:.{p}f}") == w for w in self.weights)
            ),
            _MAX_PLACES,
        )
        return "+".join(f"{emotion}={weight:.{places}f}" for emotion, weight in self.parts)

    def __str__(self) -> str:
        return self.spec


def single(emotion: str) -> Blend:
    """The blend of one emotion (checked)."""
    return Blend(((check_emotion(emotion), 1.0),))


def parse_blend(text: str) -> Blend:
    """Parse `joy`, `joy+sadness` or `joy=0.7+sadness=0.3`; raise a one-line PoetstudioError.

    Weights are positive ASCII decimals up to MAX_WEIGHT; each emotion's share of the blend must
    be at least MIN_SHARE. Errors quote the text as given.
    """
    pieces = [piece.strip() for piece in str(text).split("+")]
    if len(pieces) == 1:
        return single(pieces[0])
    emotions: list[str] = []
    weights: list[Fraction] = []
    shown: list[str] = []
    for piece in pieces:
        if not piece:
            raise PoetstudioError(f"empty part in the blend {text!r}; write it like joy+sadness")
        name, has_weight, raw = piece.partition("=")
        emotion = check_emotion(name)
        if emotion == NEUTRAL:
            raise PoetstudioError(
                f"neutral cannot be blended in {text!r}: blends mix the 8 emotions "
                "(neutral is what each is guided away from)"
            )
        if emotion in emotions:
            raise PoetstudioError(f"{emotion} appears twice in the blend {text!r}")
        weight = _parse_weight(raw.strip(), emotion, text) if has_weight else Fraction(1)
        emotions.append(emotion)
        weights.append(weight)
        shown.append(repr(raw.strip()) if has_weight else "1 (the default)")
    total = sum(weights, Fraction(0))
    for emotion, weight, as_typed in zip(emotions, weights, shown, strict=True):
        if weight / total < MIN_SHARE:
            raise PoetstudioError(
                f"weight {as_typed} for {emotion} in {text!r} is only "
                f"{float(weight / total * 100):.3g}% of the blend, too little to matter: give "
                f"each emotion at least {float(MIN_SHARE):.1%}"
            )
    shares = _canonical_shares([weight / total for weight in weights])
    return Blend(tuple((e, float(share)) for e, share in zip(emotions, shares, strict=True)))


def _parse_weight(raw: str, emotion: str, text: str) -> Fraction:
    """The exact value of one weight as typed, checked: a positive decimal up to MAX_WEIGHT."""
    where = f"weight {raw!r} for {emotion} in {text!r}"
    if len(raw) > MAX_WEIGHT_CHARS:
        raise PoetstudioError(f"{where} has over {MAX_WEIGHT_CHARS} characters; use fewer digits")
    weight = Fraction(raw) if _WEIGHT.fullmatch(raw) else Fraction(0)
    if weight <= 0:
        raise PoetstudioError(
            f"{where} must be a positive number written with the digits 0-9 and at most one "
            "dot, like 0.7 or 3"
        )
    if weight > MAX_WEIGHT:
        raise PoetstudioError(
            f"{where} is over {MAX_WEIGHT}; weights are relative, so scale them down "
            "(joy=1+sadness=3 is joy=100+sadness=300)"
        )
    return weight


def _canonical_shares(shares: list[Fraction]) -> list[Fraction]:
    """Shares as decimals of 2 to _MAX_PLACES places that sum to exactly 1.

    Exact shares are kept as they are. Others are rounded at the fewest places that keep each
    within _TOLERANCE of the share asked for (largest remainders get the last units, the first
    given on a tie), so the canonical spec is exact in turn and parses back to the same shares.
    """
    unit = 10**_MAX_PLACES
    if all((share * unit).denominator == 1 for share in shares):
        return shares
    for places in range(_MIN_PLACES, _MAX_PLACES + 1):
        rounded = _largest_remainders(shares, 10**places)
        if all(abs(r - s) <= _TOLERANCE * s for r, s in zip(rounded, shares, strict=True)):
            return rounded
    return _largest_remainders(shares, unit)  # not reached: MIN_SHARE fits _MAX_PLACES


def _largest_remainders(shares: list[Fraction], units: int) -> list[Fraction]:
    """`shares` (summing to 1) as whole numbers of 1/`units`, still summing to exactly 1."""
    scaled = [share * units for share in shares]
    counts = [int(value) for value in scaled]  # floor: shares are positive
    by_remainder = sorted(range(len(scaled)), key=lambda i: -(scaled[i] - counts[i]))
    for index in by_remainder[: units - sum(counts)]:
        counts[index] += 1
    return [Fraction(count, units) for count in counts]


def blend_choices() -> tuple[str, ...]:
    """The emotions a blend may mix (every model emotion but neutral)."""
    return tuple(e for e in MODEL_EMOTIONS if e != NEUTRAL)
