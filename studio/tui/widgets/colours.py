"""One colour per emotion, shared by the picker, the poem panel and the emotion meter."""

from __future__ import annotations

import contextlib

from studio.core.blend import parse_blend
from trainer.common.errors import PoetstudioError

# Plutchik's wheel colours, brightened for dark terminals; neutral is a soft grey.
EMOTION_COLOURS: dict[str, str] = {
    "neutral": "#b0b0b0",
    "anger": "#ff5f5f",
    "anticipation": "#ffaf5f",
    "disgust": "#af87ff",
    "fear": "#5fd787",
    "joy": "#ffd75f",
    "sadness": "#5f87ff",
    "surprise": "#5fd7ff",
    "trust": "#87d75f",
}


def colour_of(emotion: str) -> str:
    """The colour of `emotion`, or of a blend spec's primary emotion (grey for anything unknown)."""
    if emotion not in EMOTION_COLOURS:
        with contextlib.suppress(PoetstudioError):  # not a spec either: the grey below
            emotion = parse_blend(emotion).primary
    return EMOTION_COLOURS.get(emotion, EMOTION_COLOURS["neutral"])


def blend_targets(target: str | tuple[str, ...]) -> tuple[str, ...]:
    """The emotions a poem aims at: a blend spec's parts, or the tuple as given."""
    if not isinstance(target, str):
        return tuple(target)
    try:
        return parse_blend(target).emotions
    except PoetstudioError:
        return (target,)  # not a spec (e.g. an unknown name): aim at it, which lights nothing
