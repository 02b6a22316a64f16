"""The emotion models the studio can use: bundled starter models and the user's own, by emotion.

A model folder is `models/<emotion>/` holding a `poetstudio.json` manifest plus either PEFT adapter
files (method `lora`) or a full Hugging Face model (method `full`). The user's models in the data
home win over the bundled ones. A folder whose manifest is missing or corrupt is not a model: it is
reported as a one-line problem, and the other emotions stay usable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import BUNDLED_DIR
from trainer.emotions import MODEL_EMOTIONS, NEUTRAL, check_emotion
from trainer.errors import PoetstudioError
from trainer.home import DataHome

MANIFEST = "poetstudio.json"
METHODS = ("lora", "full")
# The files each method needs beside its manifest, so a half-copied folder is caught before loading.
REQUIRED_FILES = {
    "lora": ("adapter_config.json", "adapter_model.safetensors"),
    "full": ("config.json",),
}


@dataclass(frozen=True)
class ModelInfo:
    """One loadable emotion model and what its manifest says about it."""

    emotion: str
    path: Path
    source: str  # "user" or "bundled"
    method: str  # "lora" or "full"
    base_spec: str
    manifest: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class ModelScan:
    """The usable models by emotion, and a one-line problem for each folder that is not usable."""

    models: dict[str, ModelInfo]
    problems: dict[str, str]


def train_hint(emotion: str) -> str:
    """The command that trains a model for `emotion`."""
    return f"poetstudio train --emotion {emotion}"


def no_models_hint() -> str:
    """What to do when there are no models at all."""
    return (
        "no emotion models found: reinstall poetstudio to get the bundled starter models, "
        f"or train one with `{train_hint(NEUTRAL)}` (or `poetstudio train --all`)"
    )


def read_model(folder: Path, source: str, emotion: str) -> ModelInfo:
    """Read one model folder's manifest; raise PoetstudioError naming it if it is unusable."""
    manifest_path = folder / MANIFEST
    try:
        raw = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PoetstudioError(f"{source} model {emotion!r} has no {MANIFEST} in {folder}") from None
    except OSError as exc:
        raise PoetstudioError(f"cannot read {manifest_path}: {exc.strerror or exc}") from None
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoetstudioError(f"corrupt manifest {manifest_path}: {exc}") from None
    if not isinstance(manifest, dict):
        raise PoetstudioError(f"corrupt manifest {manifest_path}: not a JSON object")
    method = manifest.get("method")
    if method not in METHODS:
        raise PoetstudioError(f"manifest {manifest_path} has unknown method {method!r}")
    base = manifest.get("base") or {}
    base_spec = base.get("spec") if isinstance(base, dict) else None
    if method == "lora" and not (isinstance(base_spec, str) and base_spec):
        raise PoetstudioError(f"manifest {manifest_path} names no base model (base.spec)")
    for name in REQUIRED_FILES[method]:
        if not (folder / name).is_file():
            raise PoetstudioError(f"{source} model {emotion!r} is missing {name} in {folder}")
    return ModelInfo(
        emotion=emotion,
        path=folder,
        source=source,
        method=method,
        base_spec=base_spec or str(folder),
        manifest=manifest,
    )


def scan_models(home: DataHome, bundled_dir: Path = BUNDLED_DIR) -> ModelScan:
    """Find every emotion's model; a user's model wins, a broken one falls back to the bundled."""
    models: dict[str, ModelInfo] = {}
    problems: dict[str, str] = {}
    for emotion in MODEL_EMOTIONS:
        for source, root in (("user", home.models), ("bundled", bundled_dir)):
            folder = root / emotion
            if not folder.is_dir():
                continue
            try:
                models[emotion] = read_model(folder, source, emotion)
            except PoetstudioError as exc:
                problems.setdefault(emotion, str(exc))
                continue
            break
    return ModelScan(models=models, problems=problems)


def list_models(home: DataHome, bundled_dir: Path = BUNDLED_DIR) -> dict[str, ModelInfo]:
    """The usable model for each emotion that has one; user models win over bundled ones."""
    return scan_models(home, bundled_dir).models


def resolve_model(
    emotion: str, home: DataHome, bundled_dir: Path = BUNDLED_DIR, scan: ModelScan | None = None
) -> ModelInfo:
    """The model for `emotion`, or a PoetstudioError that says how to get one."""
    name = check_emotion(emotion)
    scan = scan if scan is not None else scan_models(home, bundled_dir)
    if name in scan.models:
        return scan.models[name]
    if name in scan.problems:
        raise PoetstudioError(f"{scan.problems[name]}; retrain it with `{train_hint(name)}`")
    if not scan.models:
        raise PoetstudioError(no_models_hint())
    raise PoetstudioError(
        f"no model for {name!r} yet; train it with `{train_hint(name)}` "
        f"(trained: {', '.join(sorted(scan.models))})"
    )


def untrained(scan: ModelScan) -> dict[str, str]:
    """Each emotion without a usable model, mapped to the command that trains it."""
    return {e: train_hint(e) for e in MODEL_EMOTIONS if e not in scan.models}
