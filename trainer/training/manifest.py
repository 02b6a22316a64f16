"""What a finished model says about itself: `poetstudio.json` and a Hugging Face model card."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.common.atomic import atomic_write_json, atomic_write_text
from trainer.common.records import (
    COUNT,
    NUMBER,
    STRING,
    MissingRecordError,
    obj,
    one_of,
    optional,
    read_object,
    required,
)
from trainer.common.versions import package_versions

MANIFEST = "poetstudio.json"
CARD = "README.md"
FORMAT = 1
METHODS = ("lora", "full")
# The fields readers rely on, with their types. Only `method` is always there: models written
# before a field existed still load, but a field that is there must have its type.
MANIFEST_SCHEMA = {
    "format": optional(COUNT),
    "emotion": optional(STRING),
    "method": required(one_of(*METHODS)),
    "base": optional(obj(spec=optional(STRING), id=optional(STRING, nullable=True))),
    "parent": optional(obj(emotion=optional(STRING), method=optional(STRING)), nullable=True),
    "poem_tokens": optional(obj(bos=required(COUNT), eos=required(COUNT)), nullable=True),
    "dataset": optional(obj(), nullable=True),
    "hyperparameters": optional(obj(), nullable=True),
    "metrics": optional(
        obj(
            best_val_loss=optional(NUMBER, nullable=True),
            best_val_ppl=optional(NUMBER, nullable=True),
            best_step=optional(COUNT, nullable=True),
        )
    ),
    "steps": optional(COUNT),
    "stop_reason": optional(STRING),
    "wall_time_s": optional(NUMBER),
    "device": optional(STRING),
    "versions": optional(obj(), nullable=True),
    "job": optional(STRING, nullable=True),
    "created": optional(STRING),
}
MANIFEST_FIX = "retrain the model, or delete its folder"


def build_manifest(
    *,
    emotion: str,
    method: str,
    base: dict[str, Any],
    parent: dict[str, Any] | None,
    poem_tokens: dict[str, int],
    dataset: dict[str, Any],
    hyperparameters: dict[str, Any],
    best_val_loss: float,
    best_val_ppl: float,
    steps: int,
    best_step: int,
    stop_reason: str,
    wall_time_s: float,
    device: str,
    job_id: str,
) -> dict[str, Any]:
    """The `poetstudio.json` contents of a finished model (see the shared model-folder contract)."""
    return {
        "format": FORMAT,
        "emotion": emotion,
        "method": method,
        "base": base,
        "parent": parent,
        "poem_tokens": poem_tokens,
        "dataset": dataset,
        "hyperparameters": hyperparameters,
        "metrics": {
            "best_val_loss": round(best_val_loss, 6),
            "best_val_ppl": round(best_val_ppl, 4),
            "best_step": best_step,
        },
        "steps": steps,
        "stop_reason": stop_reason,
        "wall_time_s": round(wall_time_s, 1),
        "device": device,
        # The packages that shaped the weights.
        "versions": package_versions("poetstudio", "torch", "transformers", "peft"),
        "job": job_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def model_card(manifest: dict[str, Any]) -> str:
    """A README.md in the Hugging Face model-card convention: YAML front matter, then prose."""
    emotion = manifest["emotion"]
    base = manifest["base"]
    data = manifest["dataset"]
    metrics = manifest["metrics"]
    hyper = manifest["hyperparameters"]
    parent = manifest.get("parent")
    lines = [
        "---",
        "library_name: peft" if manifest["method"] == "lora" else "library_name: transformers",
        f"base_model: {base['id']}",
        f"license: {_license(str(base['id']))}",
        "pipeline_tag: text-generation",
        "tags:",
        "- poetstudio",
        "- poetry",
        f"- {emotion}",
        "- lora" if manifest["method"] == "lora" else "- full-fine-tune",
        "---",
        "",
        f"# poetstudio {emotion} poetry model",
        "",
        f"A {_method_words(manifest['method'])} of `{base['id']}` that writes short poems in the "
        f"manner of the Gutenberg Poetry Corpus poems labelled **{emotion}** by the NRC Emotion "
        "Lexicon (EmoLex; Mohammad & Turney 2013).",
        "",
        "## Lineage",
        "",
        f"- Base: `{base['spec']}` (id `{base['id']}`, revision `{base.get('revision')}`)",
        f"- Started from: {_parent_words(parent)}",
        "",
        "## Training data",
        "",
        f"- Dataset `{data.get('name')}` (manifest sha256 `{data.get('manifest_sha256')}`)",
        f"- {data.get('train_poems')} training poems of at most {data.get('max_words')} words, "
        f"{data.get('train_tokens')} tokens; {data.get('valid_poems')} validation poems",
        "- Poems are packed into fixed blocks as `[bos] poem [eos]`; padding is not in the loss.",
        "",
        "## Training",
        "",
        f"- {manifest['steps']} optimizer steps on {manifest['device']}, "
        f"{manifest['wall_time_s']} s; stopped because: {manifest['stop_reason']}",
        "- Hyperparameters: " + ", ".join(f"{k}={v}" for k, v in sorted(hyper.items())),
        "",
        "## Evaluation",
        "",
        f"- Best validation loss {metrics['best_val_loss']} (perplexity {metrics['best_val_ppl']}) "
        f"at step {metrics['best_step']}; these are the weights saved here.",
        "",
        "## Use",
        "",
        f"Open `poetstudio`, pick **{emotion}**, and type a first line.",
        "",
    ]
    return "\n".join(lines)


def _license(base_id: str) -> str:
    """The license of the known bases' weights; 'other' for the rest (the user knows theirs)."""
    if "SmolLM2" in base_id:
        return "apache-2.0"
    if base_id.endswith("gpt2"):
        return "mit"
    return "other"


def _method_words(method: str) -> str:
    return "LoRA adapter" if method == "lora" else "full fine-tune"


def _parent_words(parent: dict[str, Any] | None) -> str:
    if not parent:
        return "the pretrained base"
    return f"the {parent.get('emotion')} model (job {parent.get('job')}, {parent.get('method')})"


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write `poetstudio.json` and the model card into a model folder."""
    atomic_write_json(folder / MANIFEST, manifest)
    atomic_write_text(folder / CARD, model_card(manifest))


@dataclass(frozen=True, eq=False)
class ModelManifest(Mapping[str, Any]):
    """A model's `poetstudio.json`, typed: the fields readers use, from the checked record.

    Like peft's configs it tolerates keys it does not know (a newer poetstudio's), and fields
    older models lack are None. The record as read stays available as a read-only mapping, so
    `manifest["hyperparameters"]` still reaches what has no typed field.
    """

    method: str
    emotion: str | None = None
    base_spec: str | None = None
    base_id: str | None = None
    parent: dict[str, Any] | None = None  # the lineage summary of the model it started from
    poem_tokens: dict[str, int] | None = None
    best_val_loss: float | None = None
    best_val_ppl: float | None = None
    best_step: int | None = None
    steps: int | None = None
    job: str | None = None
    created: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        """The typed view of a record that passed MANIFEST_SCHEMA."""
        base = data.get("base") or {}
        metrics = data.get("metrics") or {}
        return cls(
            method=data["method"],
            emotion=data.get("emotion"),
            base_spec=base.get("spec") or None,
            base_id=base.get("id"),
            parent=data.get("parent"),
            poem_tokens=data.get("poem_tokens"),
            best_val_loss=metrics.get("best_val_loss"),
            best_val_ppl=metrics.get("best_val_ppl"),
            best_step=metrics.get("best_step"),
            steps=data.get("steps"),
            job=data.get("job"),
            created=data.get("created"),
            raw=data,
        )

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def load_manifest(folder: Path, fix: str = MANIFEST_FIX) -> ModelManifest | None:
    """The typed manifest of a model folder, or None when it has none (see `read_manifest`).

    The one reader of model manifests for everything that uses their fields.
    """
    data = read_manifest(folder, fix)
    return None if data is None else ModelManifest.from_dict(data)


def read_manifest(folder: Path, fix: str = MANIFEST_FIX) -> dict[str, Any] | None:
    """The checked manifest of a model folder, or None when the folder has none.

    A manifest that is unreadable, not JSON, or has a field of the wrong type raises a one-line
    RecordError naming the file and ending with `fix`: a damaged model is reported, never
    mistaken for no model.
    """
    try:
        return read_object(folder / MANIFEST, MANIFEST_SCHEMA, "manifest", fix=fix)
    except MissingRecordError:
        return None
