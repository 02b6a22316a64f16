"""A lean inference forward for peft's LoRA linear layers: one adapter, or one adapter per row.

peft's `lora.Linear.forward` is general (mixed batches, several active adapters, variants such as
DoRA, dtype casts, dropout); per decoded token that generality costs tens of microseconds in each
of the hundreds of adapted layers, about a tenth of a small model's decoding time on a CPU. For
plain LoRA in inference the layer is `base(x) + scale * B(A(x))`, which this module installs as
an instance-level forward. Layers it does not understand keep peft's own forward.

Guided decoding runs the emotion and neutral models as rows of one batch, on one KV cache, and
batched writing runs many poems' rows at once. The per-row forward concatenates the distinct
adapters once, A side by side and B (scale folded in) stacked, and computes
`((x @ A_all) * mask_r) @ B_all`: the mask keeps row r's own adapter block, so each row gets
exactly `scale_r * B_r(A_r(x_r))`, in two matmuls per layer however many rows there are, and
the weights read per token grow with the number of distinct adapters, not of rows.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch


def _lean_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    import torch.nn.functional as F

    a_weight, b_weight, scale = self._poetstudio_lora
    out = self.base_layer(x, *args, **kwargs)
    return out.add_(F.linear(F.linear(x, a_weight), b_weight), alpha=scale)


def _rows_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    a_all, b_all, mask = self._poetstudio_rows
    out = self.base_layer(x, *args, **kwargs)
    return out.add_((x @ a_all).mul_(mask) @ b_all)


def _plain_lora(layer: Any, adapter: str) -> bool:
    """Whether `layer` applies `adapter` as plain unmerged LoRA (no DoRA or other variant)."""
    return (
        adapter in layer.lora_A
        and adapter not in getattr(layer, "lora_variant", {})
        and not layer.merged
        and not layer.disable_adapters
        and layer.lora_A[adapter].weight.dtype == layer.base_layer.weight.dtype
    )


def lora_layers(model: torch.nn.Module) -> list[Any]:
    """The LoRA linear layers peft injected into `model` (fixed once an adapter is loaded)."""
    from peft.tuners.lora import Linear as LoraLinear

    return [layer for layer in model.modules() if isinstance(layer, LoraLinear)]


def install(layers: list[Any], adapter: str) -> int:
    """Point each LoRA layer at `adapter` through the lean forward.

    Returns how many layers use the lean forward; the others (a variant such as DoRA, a merged
    layer, a dtype mismatch) fall back to peft's own forward, which reads peft's active adapter.
    """
    lean = 0
    for layer in layers:
        if _plain_lora(layer, adapter):
            layer._poetstudio_lora = (
                layer.lora_A[adapter].weight,
                layer.lora_B[adapter].weight,
                float(layer.scaling[adapter]),
            )
            layer.forward = types.MethodType(_lean_forward, layer)
            lean += 1
        elif "forward" in vars(layer):
            del layer.forward
    return lean


def install_rows(layers: list[Any], adapters: list[str]) -> bool:
    """Give row r of every batch adapter `adapters[r]`, through the per-row forward.

    Returns False, and changes nothing, when some layer cannot take it (a variant such as DoRA, a
    merged layer, a dtype mismatch): the caller then runs one forward per adapter instead.
    """
    import torch

    distinct = tuple(dict.fromkeys(adapters))
    if not all(_plain_lora(layer, name) for layer in layers for name in distinct):
        return False
    masks: dict[tuple[Any, ...], torch.Tensor] = {}  # one per column layout, shared by layers
    with torch.no_grad():
        for layer in layers:
            stack = _stacked(layer, distinct)
            mask = masks.get(stack.layout)
            if mask is None:
                rows = [stack.names.index(name) for name in adapters]
                owners = stack.owners
                mask = torch.tensor(rows, device=owners.device)[:, None] == owners[None, :]
                mask = masks[stack.layout] = mask.to(stack.a_all.dtype)[:, None, :]
            layer._poetstudio_rows = (stack.a_all, stack.b_all, mask)
            layer.forward = types.MethodType(_rows_forward, layer)
    return True


class _Stack(NamedTuple):
    """A layer's adapters side by side for the per-row forward."""

    names: tuple[str, ...]
    a_all: Any  # every A, transposed, side by side
    b_all: Any  # every B, transposed, its scale folded in, stacked
    owners: Any  # the index in `names` of each rank column
    layout: tuple[Any, ...]  # names and ranks: layers alike share one row mask
    signature: tuple[Any, ...] | None  # what it was built from (`_signature`)


def _stacked(layer: Any, distinct: tuple[str, ...]) -> _Stack:
    """The layer's adapters side by side, covering every name in `distinct`.

    A batch narrows as its poems end, so the last stack is kept and reused while it still covers
    the batch (the mask zeroes the columns of adapters no row uses); stacking anew at each
    narrowing took a seventh of a batch's decoding time.
    """
    import torch

    kept: _Stack | None = getattr(layer, "_poetstudio_stacked", None)
    if (
        kept is not None
        and set(distinct) <= set(kept.names)
        and _signature(layer, kept.names) == kept.signature
    ):
        return kept
    ranks = tuple(layer.lora_A[name].weight.shape[0] for name in distinct)
    a_all = torch.cat([layer.lora_A[name].weight.t() for name in distinct], dim=1).contiguous()
    b_all = torch.cat(
        [layer.lora_B[name].weight.t() * float(layer.scaling[name]) for name in distinct]
    ).contiguous()
    owners = torch.cat(
        [torch.full((rank,), index, device=a_all.device) for index, rank in enumerate(ranks)]
    )
    stack = _Stack(distinct, a_all, b_all, owners, (distinct, ranks), _signature(layer, distinct))
    layer._poetstudio_stacked = stack
    return stack


def _signature(layer: Any, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """What a stack was built from: each adapter's weights (storage and dtype: a move or a cast
    gives new storage) and scale; None once one of them is gone. A stack whose signature
    changed is stale."""
    if not all(name in layer.lora_A for name in names):
        return None
    return tuple(
        (weight.data_ptr(), weight.dtype, float(layer.scaling[name]))
        for name in names
        for weight in (layer.lora_A[name].weight, layer.lora_B[name].weight)
    )
