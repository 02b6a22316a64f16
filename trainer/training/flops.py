"""Model-FLOPs utilisation: the FLOPs a step's tokens needed, as a share of the device's peak.

FLOPs per trained token, for a causal LM of `L` layers of width `d` on blocks of `T` tokens:

    6 * trained + 4 * frozen + 6 * L * T * d

- A weight matrix of `n` entries costs `2n` FLOPs per token forward (a multiply and an add per
  entry), `2n` backward for the gradient of its input, and `2n` for the gradient of the weight
  itself: `6n` for a trained matrix, `4n` for a frozen one, which needs no weight gradient. So a
  full fine-tune is about `6 x params`, and LoRA about `4 x params` plus `6 x` its adapters.
- Only matrices that multiply count: the input embedding is a look-up, not a matmul, while the
  output head is a matmul (counted once, tied or not). Biases and norms are too small to matter.
- Attention's own matmuls (scores `Q K^T` and the weighted sum with `V`) have no weights: each
  costs `2 * T * d` per token and layer forward, halved by the causal mask that SDPA skips, so
  `2 * L * T * d` forward and three times that with the backward pass.

The peak is the device's dense bf16 tensor throughput from NVIDIA's datasheets, looked up by
the name torch reports. An unknown GPU, MPS and the CPU have no entry, and their MFU is not shown
rather than guessed; `POETSTUDIO_PEAK_TFLOPS` (a number, in TFLOP/s) sets the peak for a device
the table does not know.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PEAK_ENV = "POETSTUDIO_PEAK_TFLOPS"

# Dense (no sparsity) bf16 tensor-core TFLOP/s, most specific names first: "H100 PCIe" before
# "H100", and word boundaries keep "A10" from matching "A100" or "A10G".
PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    (r"\bGH200\b", 989.0),
    (r"\bH200\b", 989.0),
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\bNVL\b", 835.0),
    (r"\bH100\b", 989.0),  # SXM
    (r"\bH800\b", 989.0),
    (r"\bA100\b", 312.0),
    (r"\bA800\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bL40\b", 181.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
    (r"\bRTX 4090\b", 165.0),
)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs of a step depend on: matmul weights, trained or frozen, and the shape."""

    trained: int  # entries of matrices the optimizer updates (all of them in a full fine-tune)
    frozen: int  # entries of matrices that stay as they are (the base under LoRA)
    layers: int
    width: int  # hidden size (d_model)


def flops_per_token(shape: ModelShape, block_size: int) -> float:
    """Training FLOPs per token: forward and backward, attention included (see the module doc)."""
    weights = 6 * shape.trained + 4 * shape.frozen
    return float(weights + 6 * shape.layers * block_size * shape.width)


def model_shape(model: PreTrainedModel) -> ModelShape:
    """Count a (possibly peft-wrapped) causal LM's matmul weights, and read its depth and width."""
    import torch

    embeddings = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding) and hasattr(module, "weight")
    }
    trained = frozen = 0
    for param in model.parameters():
        if param.dim() < 2 or id(param) in embeddings:
            continue
        if param.requires_grad:
            trained += param.numel()
        else:
            frozen += param.numel()
    head = model.get_output_embeddings()
    if head is not None and id(head.weight) in embeddings:
        # A head tied to the input embedding is still a matmul per token.
        if head.weight.requires_grad:
            trained += head.weight.numel()
        else:
            frozen += head.weight.numel()
    config = model.config
    return ModelShape(trained, frozen, int(config.num_hidden_layers), int(config.hidden_size))


def peak_flops(device_name: str | None) -> float | None:
    """The dense bf16 peak in FLOP/s, from the environment or the table; None when unknown."""
    override = os.environ.get(PEAK_ENV, "").strip()
    if override:
        try:
            value = float(override)
        except ValueError:
            value = math.nan
        if not 0 < value < math.inf:
            raise PoetstudioError(
                f"{PEAK_ENV} must be a positive number of TFLOP/s, not {override!r}"
            )
        return value * 1e12
    if not device_name:
        return None
    for pattern, tflops in PEAK_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops * 1e12
    return None


def device_name(device: str) -> str | None:
    """The accelerator's name as torch reports it ("NVIDIA H200"); None for the CPU and MPS."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return str(torch.cuda.get_device_name(torch.device(device)))
    return None


def mfu(tokens_per_s: float, per_token: float, peak: float | None) -> float | None:
    """The share of `peak` that `tokens_per_s` tokens of `per_token` FLOPs each amount to."""
    if peak is None or peak <= 0:
        return None
    return tokens_per_s * per_token / peak
