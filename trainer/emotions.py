"""The emotions poetstudio knows: EmoLex's eight Plutchik emotions, plus neutral and mixed."""

from __future__ import annotations

from trainer.errors import PoetstudioError

EMOTIONS: tuple[str, ...] = (
    "anger",
    "anticipation",
    "disgust",
    "fear",
    "joy",
    "sadness",
    "surprise",
    "trust",
)
NEUTRAL = "neutral"
MIXED = "mixed"
# The nine that have models: the seed trains neutral first, then one per emotion.
MODEL_EMOTIONS: tuple[str, ...] = (NEUTRAL, *EMOTIONS)
# Every label a poem can carry in a dataset.
LABELS: tuple[str, ...] = (*MODEL_EMOTIONS, MIXED)


def check_emotion(name: str) -> str:
    """Return `name` normalised if it is one of the nine model emotions, else raise."""
    cleaned = name.strip().lower()
    if cleaned in MODEL_EMOTIONS:
        return cleaned
    if any(sep in name for sep in ("/", "\\", "..")) or name.startswith("."):
        raise PoetstudioError(f"refusing path-like emotion name {name!r}")
    raise PoetstudioError(
        f"unknown emotion {name!r}; choose one of: {', '.join(MODEL_EMOTIONS)}"
    )
