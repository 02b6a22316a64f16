"""Pretrained base models: named presets, Hub ids and local folders, resolved for loading."""

from __future__ import annotations

from pathlib import Path

from trainer.home import DataHome


def resolve_base(spec: str, home: DataHome) -> str:
    """Return what `from_pretrained` should load for `spec`: a local folder or a Hub id."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return spec
