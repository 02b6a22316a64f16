"""The emotions poetstudio knows: EmoLex's eight Plutchik emotions, plus neutral and mixed."""

from __future__ import annotations

import functools
import json
import re

from trainer.common.errors import PoetstudioError

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
    raise PoetstudioError(f"unknown emotion {name!r}; choose one of: {', '.join(MODEL_EMOTIONS)}")


# --- EmoLex labelling -------------------------------------------------------------------------
# The NRC Emotion Lexicon (EmoLex; Mohammad & Turney 2013, research use) is read from the
# installed nrclex package, never copied into this repository.

LEXICON_PACKAGE = "nrclex"
LEXICON_RESOURCE = "data/nrc_en.json"
# The lexicon's entries are plain lowercase letters, so a letters-only token is all it can match.
TOKEN_PATTERN = r"[a-z]+"
_TOKEN = re.compile(TOKEN_PATTERN)
_INDEX = {emotion: position for position, emotion in enumerate(EMOTIONS)}


@functools.cache
def lexicon() -> dict[str, tuple[int, ...]]:
    """Word -> indexes into EMOTIONS, for the words that carry at least one of the 8 emotions."""
    from importlib import resources

    try:
        source = resources.files(LEXICON_PACKAGE).joinpath(LEXICON_RESOURCE)
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, FileNotFoundError, ValueError) as exc:
        raise PoetstudioError(
            f"cannot read the EmoLex lexicon from the installed nrclex package ({exc}); "
            "reinstall poetstudio"
        ) from None
    table: dict[str, tuple[int, ...]] = {}
    for word, associations in raw.items():
        indexes = tuple(_INDEX[name] for name in associations if name in _INDEX)
        if indexes:
            table[word.lower()] = indexes
    return table


def count_vector(text: str) -> list[int]:
    """Emotion-word counts of `text`, in EMOTIONS order (lowercased, regex-tokenized)."""
    table = lexicon()
    counts = [0] * len(EMOTIONS)
    get = table.get
    for token in _TOKEN.findall(text.lower()):
        hit = get(token)
        if hit is not None:
            for index in hit:
                counts[index] += 1
    return counts


def count_emotions(text: str) -> dict[str, int]:
    """How many EmoLex words of each of the 8 emotions `text` holds (a word may count for many)."""
    return dict(zip(EMOTIONS, count_vector(text), strict=True))


def label_counts(counts: dict[str, int], min_margin: int = 1) -> str:
    """The label for emotion counts.

    No emotion words: neutral. Otherwise the top emotion, when it leads every other emotion by at
    least `min_margin` words (1 = a unique top); when it does not (ties included): mixed.
    """
    ranked = sorted((counts.get(emotion, 0) for emotion in EMOTIONS), reverse=True)
    top, second = ranked[0], ranked[1]
    if top <= 0:
        return NEUTRAL
    if top - second < max(1, min_margin):
        return MIXED
    return max(EMOTIONS, key=lambda emotion: counts.get(emotion, 0))
