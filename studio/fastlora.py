"""A lean inference forward for peft's LoRA linear layers, with one adapter active at a time.

peft's `lora.Linear.forward` is general (mixed batches, several active adapters, variants such as
DoRA, dtype casts, dropout); per decoded token that generality costs tens of microseconds in each
of the hundreds of adapted layers, about a tenth of a small model's decoding time on a CPU. For
plain LoRA in inference the layer is `base(x) + scale * B(A(x))`, which this module installs as
an instance-level forward. Layers it does not understand keep peft's own forward.
"""

from __future__ import annotations

import types
from typing import Any


def _lean_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch.nn.functional as F

    a_weight, b_weight, scale = self._poetstudio_lora
    out = self.base_layer(x, *args, **kwargs)
    return out.add_(F.linear(F.linear(x, a_weight), b_weight), alpha=scale)


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
