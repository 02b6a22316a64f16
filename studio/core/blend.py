"""Emotion blends: what a poem is asked to feel, as one emotion or a weighted mix of several.

A blend is written `joy+sadness` (equal weights) or `joy=0.7+sadness=0.3`; weights are normalised
to sum to 1. A single emotion, `joy` or `neutral`, is a blend of one. Neutral cannot be mixed in:
it is the reference every emotion is guided away from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL, check_emotion
from trainer.common.errors import PoetstudioError


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
        """The canonical text form: `joy` alone, else `joy=0.70+sadness=0.30`."""
        if self.is_single:
            return self.parts[0][0]
        return "+".join(f"{emotion}={weight:.2f}" for emotion, weight in self.parts)

    def __str__(self) -> str:
        return self.spec


def single(emotion: str) -> Blend:
    """The blend of one emotion (checked)."""
    return Blend(((check_emotion(emotion), 1.0),))


def parse_blend(text: str) -> Blend:
    """Parse `joy`, `joy+sadness` or `joy=0.7+sadness=0.3`; raise a one-line PoetstudioError."""
    pieces = [piece.strip() for piece in str(text).split("+")]
    if len(pieces) == 1:
        return single(pieces[0])
    parts: list[tuple[str, float]] = []
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
        if emotion in (e for e, _ in parts):
            raise PoetstudioError(f"{emotion} appears twice in the blend {text!r}")
        weight = 1.0
        if has_weight:
            try:
                weight = float(raw)
            except ValueError:
                weight = math.nan
            if not (math.isfinite(weight) and weight > 0):
                raise PoetstudioError(
                    f"weight {raw.strip()!r} for {emotion} in {text!r} must be a positive number"
                )
        parts.append((emotion, weight))
    total = sum(weight for _, weight in parts)
    return Blend(tuple((emotion, weight / total) for emotion, weight in parts))


def blend_choices() -> tuple[str, ...]:
    """The emotions a blend may mix (every model emotion but neutral)."""
    return tuple(e for e in MODEL_EMOTIONS if e != NEUTRAL)
