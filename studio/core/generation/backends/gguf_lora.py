"""An emotion's peft LoRA adapter written as a GGUF LoRA adapter that llama.cpp loads.

peft keeps, per adapted linear layer, `lora_A` [rank, in] and `lora_B` [out, rank], and adds
`scaling * B @ A` to the weight (scaling = alpha / rank, or alpha / sqrt(rank) with rsLoRA, per
module where the config has patterns). llama.cpp reads `<base tensor>.lora_a` and `.lora_b` of
the same shapes and adds `alpha / rank * b @ a`, or `b @ a` when the adapter's alpha is 0; so the
file says alpha 0 and `lora_b` carries peft's whole scaling.

Llama's gguf stores the rows of the q and k projections in another order than transformers (each
head's rotary halves interleaved), so `lora_B` of q_proj and k_proj takes the same row permutation
the base's q and k weights took when the gguf was made.

A conversion is cached in the data home under a name derived from the adapter's bytes and the base
it is for, written atomically (concurrent studios converting the same adapter each write a whole
file and one of them wins); a file whose recorded source no longer matches, or that does not
parse, is converted again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.common.atomic import atomic_path
from trainer.common.errors import PoetstudioError, first_line

if TYPE_CHECKING:
    import numpy as np

# Bump when what a converted file holds changes: older files are then converted again.
FORMAT = 1
SOURCE_KEY = "poetstudio.source"  # the digest of what the file was converted from
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# transformers' module names that a llama-architecture gguf names otherwise.
_LLAMA_MODULES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Architectures whose gguf permutes the q and k rows (the rest of the mapping is the same).
ARCHITECTURES = frozenset({"llama"})


@dataclass(frozen=True)
class BaseShape:
    """What the conversion needs to know of the base gguf."""

    arch: str  # general.architecture
    heads: int
    kv_heads: int


def source_digest(adapter_dir: Path, base: BaseShape) -> str:
    """A digest of the adapter's weights and config and the base it is converted for."""
    digest = hashlib.sha256(f"{FORMAT}|{base.arch}|{base.heads}|{base.kv_heads}|".encode())
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        with open(adapter_dir / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"|")
    return digest.hexdigest()


def converted_adapter(adapter_dir: Path, base: BaseShape, cache: Path, emotion: str) -> Path:
    """The GGUF LoRA of the peft adapter in `adapter_dir` for `base`, from `cache` when a file
    converted from these very bytes is there, else converted now; a one-line error when the
    adapter cannot be expressed for llama.cpp."""
    try:
        source = source_digest(adapter_dir, base)
    except OSError as exc:
        raise PoetstudioError(f"cannot read the {emotion} adapter: {first_line(exc)}") from None
    path = cache / f"{emotion}-{source[:16]}.gguf"
    if path.is_file() and recorded_source(path) == source:
        return path
    write_gguf_lora(adapter_dir, base, path, source)
    return path


def recorded_source(path: Path) -> str | None:
    """The source digest a converted file records; None when it does not parse (damaged)."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
        found = reader.fields.get(SOURCE_KEY)
        return None if found is None else str(found.contents())
    except Exception:  # a cut or garbled file fails in gguf's own ways: convert it again
        return None


def write_gguf_lora(adapter_dir: Path, base: BaseShape, path: Path, source: str = "") -> None:
    """Convert the peft adapter in `adapter_dir` into a GGUF LoRA file at `path` (atomically)."""
    import gguf

    tensors = lora_tensors(adapter_dir, base)
    with atomic_path(path, ".gguf") as tmp:
        writer = gguf.GGUFWriter(str(tmp), base.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)  # lora_b carries the scaling
        writer.add_string(SOURCE_KEY, source)
        for name, array in tensors.items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def lora_tensors(adapter_dir: Path, base: BaseShape) -> dict[str, np.ndarray]:
    """The adapter's tensors as llama.cpp names and lays them out (fp32, scaling in lora_b)."""
    import numpy as np
    from safetensors import safe_open

    config = _read_config(adapter_dir)
    if base.arch not in ARCHITECTURES:
        raise PoetstudioError(f"the llama backend cannot convert adapters for {base.arch} bases")
    pairs: dict[str, dict[str, Any]] = {}
    with safe_open(str(adapter_dir / ADAPTER_WEIGHTS), framework="np") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            module, _, part = key.partition(".lora_")
            if part not in ("A.weight", "B.weight"):
                raise PoetstudioError(f"the llama backend cannot convert adapter tensor {key}")
            pairs.setdefault(module, {})[part[0]] = handle.get_tensor(key).astype(np.float32)
    out: dict[str, np.ndarray] = {}
    for module, pair in sorted(pairs.items()):
        name, short = _gguf_name(module)
        a, b = pair["A"], pair["B"]
        b = b * _scaling(config, module, a.shape[0])
        if short == "attn_q":
            b = permute_rows(b, base.heads)
        elif short == "attn_k":
            b = permute_rows(b, base.kv_heads)
        out[f"{name}.weight.lora_a"] = np.ascontiguousarray(a)
        out[f"{name}.weight.lora_b"] = np.ascontiguousarray(b)
    return out


def permute_rows(rows: np.ndarray, heads: int) -> np.ndarray:
    """transformers' q/k row order to llama.cpp's: per head, the two rotary halves interleaved."""
    per_head = rows.shape[0] // heads
    shaped = rows.reshape(heads, 2, per_head // 2, *rows.shape[1:])
    return shaped.swapaxes(1, 2).reshape(rows.shape)


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PoetstudioError(
            f"cannot read {adapter_dir / ADAPTER_CONFIG}: {first_line(exc)}"
        ) from None
    if not isinstance(config, dict):
        raise PoetstudioError(f"{adapter_dir / ADAPTER_CONFIG} is not a JSON object")
    unsupported = [k for k in ("use_dora", "lora_bias") if config.get(k)]
    if config.get("peft_type", "LORA") != "LORA" or unsupported:
        raise PoetstudioError(
            "the llama backend converts plain LoRA adapters only "
            f"({', '.join(unsupported) or config.get('peft_type')} is not)"
        )
    return config


def _scaling(config: dict[str, Any], module: str, rank: int) -> float:
    """peft's scaling of `module`: its alpha (or the pattern's) over its rank (or its root)."""
    alpha = float(config.get("lora_alpha", rank))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if module.endswith(pattern):
            alpha = float(value)
    if config.get("use_rslora"):
        return alpha / rank**0.5
    return alpha / rank


def _gguf_name(module: str) -> tuple[str, str]:
    """`base_model.model.model.layers.3.self_attn.q_proj` -> (`blk.3.attn_q`, `attn_q`)."""
    _, found, rest = module.partition("layers.")
    block, _, inner = rest.partition(".")
    short = _LLAMA_MODULES.get(inner)
    if not found or not block.isdigit() or short is None:
        raise PoetstudioError(f"the llama backend cannot convert an adapter on {module}")
    return f"blk.{block}.{short}", short
