"""A model's CPU weights memory-mapped from one file, so that every studio process shares them.

`poetstudio serve` runs one studio process per browser tab, each with the same base model. Loaded
the ordinary way, every process holds its own converted copy of the weights. Here the weights are
written once, already in the dtype and memory layout decoding uses on CPU (linear weights
column-major, see loader._column_major_weights), into a safetensors file in the data home's
cache; each process then maps that file copy-on-write (MAP_PRIVATE) and points the model's
parameters into the mapping. The pages come from the page cache, one copy for all processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.common.atomic import atomic_path
from trainer.common.home import DataHome

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

# Bump when what the file holds or how it is laid out changes: older files are then not used.
LAYOUT = 1
_TRANSPOSED = "poetstudio.transposed"  # names stored as their transpose (column-major weights)
_ALIASES = "poetstudio.aliases"  # names that share another name's tensor (tied weights)
_LAYOUT = "poetstudio.layout"


def mapped_path(home: DataHome, source: Path, dtype: torch.dtype) -> Path | None:
    """Where the mapped weights of the model folder `source` in `dtype` live; None when the
    folder holds no safetensors weights to derive them from. The name changes whenever the
    folder's weights do (size and modification time), so a changed model is never mismatched."""
    weights = sorted(source.glob("*.safetensors"))
    if not weights:
        return None
    stamp = ";".join(f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights)
    kind = str(dtype).removeprefix("torch.")
    key = f"{source.resolve()}|{stamp}|{kind}|{LAYOUT}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return home.root / "cache" / "weights" / f"{source.name}-{kind}-{digest}.safetensors"


def write_mapped(model: PreTrainedModel, path: Path) -> None:
    """Write `model`'s weights to `path` (atomically) in the dtype and layout they have now."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    transposed: list[str] = []
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...]], str] = {}
    for name, tensor in model.state_dict().items():
        identity = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))
        if identity in seen:
            aliases[name] = seen[identity]
            continue
        seen[identity] = name
        if tensor.dim() == 2 and not tensor.is_contiguous() and tensor.t().is_contiguous():
            tensors[name] = tensor.t()
            transposed.append(name)
        else:
            tensors[name] = tensor.contiguous()
    metadata = {
        _LAYOUT: str(LAYOUT),
        _TRANSPOSED: json.dumps(transposed),
        _ALIASES: json.dumps(aliases),
    }
    with atomic_path(path, ".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_mapped(source: Path, path: Path, dtype: torch.dtype) -> PreTrainedModel | None:
    """The model of folder `source` (its config) with every weight pointing into the mapping of
    `path`; None when `path` does not fit the model (then load it the ordinary way)."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(source), trust_remote_code=False)
    # Built without initialising its weights: they are replaced at once, and pages never
    # written are never made resident.
    with _no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = handle.metadata() or {}
        if metadata.get(_LAYOUT) != str(LAYOUT):
            return None
        transposed = set(json.loads(metadata[_TRANSPOSED]))
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            tensor = handle.get_tensor(name)
            state[name] = tensor.t() if name in transposed else tensor
    for name, target in json.loads(metadata[_ALIASES]).items():
        state[name] = state[target]
    expected = model.state_dict()
    if set(state) != set(expected) or any(
        state[name].shape != expected[name].shape or state[name].dtype != expected[name].dtype
        for name in expected
    ):
        return None
    model.load_state_dict(state, assign=True)
    model.tie_weights()  # tied names were assigned one tensor each; make them one parameter again
    model.requires_grad_(False)
    return model


def _no_init_weights() -> contextlib.AbstractContextManager[object]:
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # an early 5.x: initialising costs time, not correctness
        return contextlib.nullcontext()
    return no_init_weights()
