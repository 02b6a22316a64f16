"""One colour per emotion, shared by the picker, the poem panel and the emotion meter."""

from __future__ import annotations

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
    """The colour of `emotion` (grey for anything unknown)."""
    return EMOTION_COLOURS.get(emotion, EMOTION_COLOURS["neutral"])
