"""The emotion models the studio can use: bundled starter models and the user's own, by emotion.

A model folder is `models/<emotion>/` holding a `poetstudio.json` manifest plus either PEFT adapter
files (method `lora`) or a full Hugging Face model (method `full`). The user's models in the data
home win over the bundled ones. A folder whose manifest is missing or corrupt, or that lacks a file
its method needs, is not a model: it is reported as a one-line problem, and the other emotions stay
usable. A broken user folder still takes its emotion's place: the bundled model is not used behind
the user's back while the user's own folder for that emotion exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models import BUNDLED_DIR
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL, check_emotion
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.training.manifest import MANIFEST, ModelManifest, load_manifest

# The files each method needs beside its manifest, so a half-copied folder is caught before
# loading: each entry is a set of alternatives, one of which must be there. A full model carries
# its own tokenizer; without one, transformers builds an empty tokenizer and writes empty poems.
REQUIRED_FILES: dict[str, tuple[tuple[str, ...], ...]] = {
    "lora": (("adapter_config.json",), ("adapter_model.safetensors",)),
    "full": (
        ("config.json",),
        ("model.safetensors", "model.safetensors.index.json"),
        ("tokenizer.json", "tokenizer.model", "vocab.json"),
    ),
}


@dataclass(frozen=True)
class ModelInfo:
    """One loadable emotion model and what its manifest says about it."""

    emotion: str
    path: Path
    source: str  # "user" or "bundled"
    method: str  # "lora" or "full"
    base_spec: str
    manifest: ModelManifest = field(compare=False, repr=False)


@dataclass(frozen=True)
class ModelScan:
    """The usable models by emotion, and a one-line problem for each folder that is not usable."""

    models: dict[str, ModelInfo]
    problems: dict[str, str]
    folders: dict[str, Path] = field(default_factory=dict)  # the broken folder of each problem


@dataclass(frozen=True)
class ModelEntry:
    """One model folder found, usable (`info`) or not (`problem`): a row of the models list."""

    emotion: str
    source: str  # "user" or "bundled"
    path: Path
    info: ModelInfo | None
    problem: str | None
    hidden: bool = False  # a user folder for the same emotion, usable or not, takes its place


def train_hint(emotion: str) -> str:
    """The command that trains a model for `emotion`."""
    return f"poetstudio train --emotion {emotion}"


def no_models_hint() -> str:
    """What to do when there are no models at all."""
    return (
        "no emotion models found: reinstall poetstudio to get the bundled starter models, "
        f"or train one with `{train_hint(NEUTRAL)}` (or `poetstudio train --all`)"
    )


def _missing_file(folder: Path, method: str) -> str | None:
    """What the first unmet file requirement of `method` asks for, or None when all are met."""
    for alternatives in REQUIRED_FILES[method]:
        if not any((folder / name).is_file() for name in alternatives):
            return " or ".join(alternatives)
    return None


def read_model(folder: Path, source: str, emotion: str) -> ModelInfo:
    """Read one model folder's manifest; raise PoetstudioError naming it if it is unusable."""
    manifest = load_manifest(folder, fix="")  # resolve_model says how to fix it
    if manifest is None:
        raise PoetstudioError(f"{source} model {emotion!r} has no {MANIFEST} in {folder}")
    method, base_spec = manifest.method, manifest.base_spec
    if method == "lora" and not base_spec:
        raise PoetstudioError(f"manifest {folder / MANIFEST} names no base model (base.spec)")
    missing = _missing_file(folder, method)
    if missing:
        raise PoetstudioError(f"{source} model {emotion!r} is missing {missing} in {folder}")
    return ModelInfo(
        emotion=emotion,
        path=folder,
        source=source,
        method=method,
        base_spec=base_spec or str(folder),
        manifest=manifest,
    )


def find_models(home: DataHome, bundled_dir: Path = BUNDLED_DIR) -> list[ModelEntry]:
    """Every model folder, the user's before the bundled one of each emotion, in emotion order."""
    home.recover()  # a model that a crash mid-swap left only as `.<emotion>.old` comes back first
    entries: list[ModelEntry] = []
    for emotion in MODEL_EMOTIONS:
        taken = False
        for source, root in (("user", home.models), ("bundled", bundled_dir)):
            folder = root / emotion
            if not folder.is_dir():
                continue
            try:
                info, problem = read_model(folder, source, emotion), None
            except PoetstudioError as exc:
                info, problem = None, str(exc)
            entries.append(ModelEntry(emotion, source, folder, info, problem, hidden=taken))
            taken = True
    return entries


def scan_models(home: DataHome, bundled_dir: Path = BUNDLED_DIR) -> ModelScan:
    """Find every emotion's model: the user's folder wins, even when it is broken."""
    return scan_entries(find_models(home, bundled_dir))


def scan_entries(entries: list[ModelEntry]) -> ModelScan:
    """The models and problems of `find_models`'s entries: each emotion's first folder decides.

    A broken user folder makes its emotion a problem (with the reason), not a silent fallback to
    the bundled model: the user asked for their own model and is told why it cannot be used.
    """
    models: dict[str, ModelInfo] = {}
    problems: dict[str, str] = {}
    folders: dict[str, Path] = {}
    for entry in entries:
        if entry.hidden:
            continue
        if entry.info is not None:
            models[entry.emotion] = entry.info
            continue
        problem = entry.problem or f"model folder {entry.path} is unusable"
        if any(other.hidden and other.emotion == entry.emotion for other in entries):
            problem += f" (it hides the bundled {entry.emotion} model)"
        problems[entry.emotion] = problem
        folders[entry.emotion] = entry.path
    return ModelScan(models=models, problems=problems, folders=folders)


def resolve_model(
    emotion: str, home: DataHome, bundled_dir: Path = BUNDLED_DIR, scan: ModelScan | None = None
) -> ModelInfo:
    """The model for `emotion`, or a PoetstudioError that says how to get one."""
    name = check_emotion(emotion)
    scan = scan if scan is not None else scan_models(home, bundled_dir)
    if name in scan.models:
        return scan.models[name]
    if name in scan.problems:
        folder = scan.folders.get(name)
        remove = f" or delete {folder}" if folder is not None else ""
        raise PoetstudioError(
            f"{scan.problems[name]}; retrain it with `{train_hint(name)}`{remove}"
        )
    if not scan.models:
        raise PoetstudioError(no_models_hint())
    raise PoetstudioError(
        f"no model for {name!r} yet; train it with `{train_hint(name)}` "
        f"(trained: {', '.join(sorted(scan.models))})"
    )


def untrained(scan: ModelScan) -> dict[str, str]:
    """Each emotion without a usable model, mapped to the command that trains it."""
    return {e: train_hint(e) for e in MODEL_EMOTIONS if e not in scan.models}
