"""The studio's remembered choices: emotion, blend and sampling controls, in `home.settings_file`.

The file is JSON, written atomically. A missing, corrupt or hand-edited file never stops the studio:
values that are absent or out of range fall back to the defaults, and keys this module does not
know are kept when the file is written again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from studio.core.blend import blend_choices
from trainer.common.atomic import atomic_write_json
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL

# Ranges the sampling controls accept; outside them sampling degenerates or stops being a poem.
TEMPERATURE_RANGE = (0.05, 3.0)
TOP_P_RANGE = (0.05, 1.0)
MAX_LINES_RANGE = (1, 200)
# The studio's strength control: near 2 verse already turns into repeated emotion words; 3 lets
# you hear that, and `poetstudio write --strength` goes up to MAX_STRENGTH for experiments.
STRENGTH_RANGE = (0.0, 3.0)
STRENGTH_STEP = 0.25
# The second emotion's share of a two-emotion blend: past a half it would be the primary.
BLEND_MIX_RANGE = (0.1, 0.5)
BLEND_MIX_STEP = 0.1
DEFAULT_BLEND_MIX = 0.5


@dataclass
class StudioSettings:
    """What the studio remembers between runs. None means "the generation core's default"."""

    emotion: str = NEUTRAL
    temperature: float | None = None
    top_p: float | None = None
    max_lines: int | None = None
    strength: float | None = None
    blend_with: str | None = None  # the second emotion of a blend; None: no blend
    blend_mix: float | None = None  # the second emotion's share; None: DEFAULT_BLEND_MIX


def parse_temperature(text: str) -> float | None:
    """The temperature typed in `text`, or None when it is not a number in range."""
    return _parse_number(text, float, TEMPERATURE_RANGE)


def parse_top_p(text: str) -> float | None:
    """The top-p typed in `text`, or None when it is not a number in range."""
    return _parse_number(text, float, TOP_P_RANGE)


def parse_max_lines(text: str) -> int | None:
    """The line limit typed in `text`, or None when it is not a whole number in range."""
    return _parse_number(text, int, MAX_LINES_RANGE)


def parse_strength(text: Any) -> float | None:
    """The guidance strength in `text`, or None when it is not a number in STRENGTH_RANGE."""
    return _parse_number(text, float, STRENGTH_RANGE)


def parse_blend_mix(text: Any) -> float | None:
    """The blend's second share in `text`, or None when it is not a number in BLEND_MIX_RANGE."""
    return _parse_number(text, float, BLEND_MIX_RANGE)


def strength_label(strength: float) -> str:
    """How the studio and `write` name a guidance strength: 0 is no guidance at all."""
    return "guidance off" if strength == 0 else f"strength {strength:.2f}"


_Number = TypeVar("_Number", int, float)


def _parse_number(text: Any, kind: type[_Number], bounds: tuple[float, float]) -> _Number | None:
    try:
        value = kind(str(text).strip())
    except (TypeError, ValueError):
        return None
    if value != value or not bounds[0] <= value <= bounds[1]:  # NaN, inf or out of range
        return None
    return value


def load_settings(path: Path) -> StudioSettings:
    """Read the settings file, keeping each valid value and defaulting the rest."""
    raw = _read_object(path)
    emotion = raw.get("emotion")
    blend_with = raw.get("blend_with")
    return StudioSettings(
        emotion=emotion if emotion in MODEL_EMOTIONS else NEUTRAL,
        temperature=parse_temperature(raw["temperature"]) if "temperature" in raw else None,
        top_p=parse_top_p(raw["top_p"]) if "top_p" in raw else None,
        max_lines=parse_max_lines(raw["max_lines"]) if "max_lines" in raw else None,
        strength=parse_strength(raw["strength"]) if "strength" in raw else None,
        blend_with=blend_with if blend_with in blend_choices() else None,
        blend_mix=parse_blend_mix(raw["blend_mix"]) if "blend_mix" in raw else None,
    )


def save_settings(path: Path, settings: StudioSettings) -> None:
    """Write the settings atomically, keeping keys written by others (or newer versions)."""
    merged = _read_object(path)
    for key, value in asdict(settings).items():
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
