"""A lean inference forward for peft's LoRA linear layers: one adapter, or one adapter per row.

peft's `lora.Linear.forward` is general (mixed batches, several active adapters, variants such as
DoRA, dtype casts, dropout); per decoded token that generality costs tens of microseconds in each
of the hundreds of adapted layers, about a tenth of a small model's decoding time on a CPU. For
plain LoRA in inference the layer is `base(x) + scale * B(A(x))`, which this module installs as
an instance-level forward. Layers it does not understand keep peft's own forward.

Guided decoding runs the emotion and neutral models as rows of one batch, on one KV cache: the
per-row forward adds `scale_r * B_r(A_r(x_r))` to row r with two batched matmuls, the adapters
stacked once (ranks zero-padded to the largest, which leaves each product exact).
"""

from __future__ import annotations

import types
from typing import Any


def _lean_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch.nn.functional as F

    a_weight, b_weight, scale = self._poetstudio_lora
    out = self.base_layer(x, *args, **kwargs)
    return out.add_(F.linear(F.linear(x, a_weight), b_weight), alpha=scale)


def _rows_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    a_stack, b_stack = self._poetstudio_rows
    out = self.base_layer(x, *args, **kwargs)
    return out.add_(torch.bmm(torch.bmm(x, a_stack), b_stack))


def _plain_lora(layer: Any, adapter: str) -> bool:
    """Whether `layer` applies `adapter` as plain unmerged LoRA (no DoRA or other variant)."""
    return (
        adapter in layer.lora_A
        and adapter not in getattr(layer, "lora_variant", {})
        and not layer.merged
        and not layer.disable_adapters
        and layer.lora_A[adapter].weight.dtype == layer.base_layer.weight.dtype
    )


def lora_layers(model: Any) -> list[Any]:
    """The LoRA linear layers peft injected into `model` (fixed once an adapter is loaded)."""
    from peft.tuners.lora import Linear as LoraLinear

    return [layer for layer in model.modules() if isinstance(layer, LoraLinear)]


def install(layers: list[Any], adapter: str) -> int:
    """Point each LoRA layer at `adapter` through the lean forward; call after every set_adapter.

    Returns how many layers use the lean forward; the others (a variant such as DoRA, a merged
    layer, a dtype mismatch) fall back to peft's own forward.
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

    if not all(_plain_lora(layer, name) for layer in layers for name in adapters):
        return False
    with torch.no_grad():
        for layer in layers:
            a_weights = [layer.lora_A[name].weight for name in adapters]  # each [rank, in]
            b_weights = [
                layer.lora_B[name].weight * float(layer.scaling[name]) for name in adapters
            ]  # each [out, rank], the scale folded in
            rank = max(weight.shape[0] for weight in a_weights)
            a_stack = a_weights[0].new_zeros((len(adapters), a_weights[0].shape[1], rank))
            b_stack = a_weights[0].new_zeros((len(adapters), rank, b_weights[0].shape[0]))
            for row, (a_weight, b_weight) in enumerate(zip(a_weights, b_weights, strict=True)):
                a_stack[row, :, : a_weight.shape[0]] = a_weight.t()
                b_stack[row, : b_weight.shape[1], :] = b_weight.t()
            layer._poetstudio_rows = (a_stack, b_stack)
            layer.forward = types.MethodType(_rows_forward, layer)
    return True
