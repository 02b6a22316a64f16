"""The studio's remembered choices: emotion, blend, sampling controls and how poems are written
(whole or line by line, and how many candidate lines), in `home.settings_file`.

The file is JSON, written atomically. A missing, corrupt or hand-edited file never stops the studio:
values that are absent or out of range fall back to the defaults, and keys this module does not
know are kept when the file is written again. The sampling values it remembers are the settings
declared with a studio control (studio/core/generation/settings.py), each under its own name and
checked against the studio's range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.blend import blend_choices
from studio.core.cowrite.writer import MAX_CANDIDATES
from studio.core.generation import settings as generation
from trainer.common.atomic import atomic_write_json
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL
from trainer.common.errors import PoetstudioError

# The second emotion's share of a two-emotion blend: past a half it would be the primary.
BLEND_MIX_RANGE = (0.1, 0.5)
BLEND_MIX_STEP = 0.1
DEFAULT_BLEND_MIX = 0.5
# The form's texts typed in the studio (rhyme scheme, syllables), checked together on load.
_TEXT_SETTINGS = frozenset(s.name for s in generation.controlled() if s.control == "text")
# How the studio writes: a whole poem at once, or line by line from candidate lines.
WHOLE_POEM = "whole"
LINE_BY_LINE = "lines"
MODES = (WHOLE_POEM, LINE_BY_LINE)


@dataclass
class StudioSettings:
    """What the studio remembers between runs. An absent value means "the core's default"."""

    emotion: str = NEUTRAL
    # The controlled generation settings by name (temperature, top_p, max_lines, strength, ...).
    sampling: dict[str, Any] = field(default_factory=dict)
    blend_with: str | None = None  # the second emotion of a blend; None: no blend
    blend_mix: float | None = None  # the second emotion's share; None: DEFAULT_BLEND_MIX
    mode: str = WHOLE_POEM  # one of MODES
    candidates: int | None = None  # candidate lines at a time; None: co-writing's default


def parse_blend_mix(text: Any) -> float | None:
    """The blend's second share in `text`, or None when it is not a number in BLEND_MIX_RANGE."""
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    low, high = BLEND_MIX_RANGE
    return value if low <= value <= high else None  # NaN fails the comparison


def parse_candidates(value: Any) -> int | None:
    """A remembered count of candidate lines, or None when it is not a whole number from 1 to
    MAX_CANDIDATES."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_CANDIDATES else None


def strength_label(strength: float) -> str:
    """How the studio and `write` name a guidance strength: 0 is no guidance at all."""
    return "guidance off" if strength == 0 else f"strength {strength:.2f}"


def load_settings(path: Path) -> StudioSettings:
    """Read the settings file, keeping each valid value and defaulting the rest."""
    raw = _read_object(path)
    emotion = raw.get("emotion")
    blend_with = raw.get("blend_with")
    sampling = {}
    for spec in generation.controlled():
        value = spec.parse(raw[spec.name]) if spec.name in raw else None
        if value is not None:
            sampling[spec.name] = value
    try:
        generation.make_params(sampling)
    except PoetstudioError:
        # Each text is valid but not together (a hand-edited scheme and syllables): the form's own.
        sampling = {k: v for k, v in sampling.items() if k not in _TEXT_SETTINGS}
    return StudioSettings(
        emotion=emotion if emotion in MODEL_EMOTIONS else NEUTRAL,
        sampling=sampling,
        blend_with=blend_with if blend_with in blend_choices() else None,
        blend_mix=parse_blend_mix(raw["blend_mix"]) if "blend_mix" in raw else None,
        mode=raw["mode"] if raw.get("mode") in MODES else WHOLE_POEM,
        candidates=parse_candidates(raw.get("candidates")),
    )


def save_settings(path: Path, settings: StudioSettings) -> None:
    """Write the settings atomically, keeping keys written by others (or newer versions)."""
    merged = _read_object(path)
    values: dict[str, Any] = {
        "emotion": settings.emotion,
        "blend_with": settings.blend_with,
        "blend_mix": settings.blend_mix,
        "mode": settings.mode,
        "candidates": settings.candidates,
    }
    for spec in generation.controlled():
        values[spec.name] = settings.sampling.get(spec.name)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    atomic_write_json(path, merged)


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
