"""The micro-batch when the user names none: 8 blocks, or on CUDA what the GPU's memory holds.

Training memory beyond the weights and optimizer is mostly activations, kept for the backward
pass. Per token, a transformer layer keeps about 17 values per hidden unit (34 bytes in 16-bit,
after Korthikanti et al. 2022, without the attention matrix that SDPA never stores), and the
output keeps its logits and their gradient in fp32, about 12 bytes per vocabulary entry. Half of
the memory left free after the model is loaded goes to them, which leaves room for the
allocator's slack, evaluation and other jobs on the same GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.training.config import DEFAULT_BATCH

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# The batch the bundled models were trained with on an H200; more changes the optimisation
# (fewer, larger steps per epoch) more than it speeds it up. --batch-size goes beyond it.
MAX_AUTO_BATCH = 64
MEMORY_SHARE = 0.5
VALUES_PER_HIDDEN_UNIT = 17
LOGIT_BYTES = 12


def activation_bytes(model: PreTrainedModel, value_bytes: int) -> int:
    """Activation bytes kept per token for the backward pass (see the module doc)."""
    config = model.config
    layers, width, vocab = config.num_hidden_layers, config.hidden_size, config.vocab_size
    return VALUES_PER_HIDDEN_UNIT * value_bytes * layers * width + LOGIT_BYTES * vocab


def fitting_batch(free_bytes: int, per_token: int, block_size: int) -> int:
    """The largest power of two of blocks whose activations take `MEMORY_SHARE` of free memory,
    at most `MAX_AUTO_BATCH` and at least 1."""
    fits = int(free_bytes * MEMORY_SHARE) // max(1, per_token * block_size)
    batch = 1
    while batch * 2 <= min(fits, MAX_AUTO_BATCH):
        batch *= 2
    return batch


def auto_batch_size(model: PreTrainedModel, device: str, block_size: int, value_bytes: int) -> int:
    """The micro-batch for a run that names none: from free memory on CUDA, else 8."""
    import torch

    if not device.startswith("cuda"):
        return DEFAULT_BATCH
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return fitting_batch(free, activation_bytes(model, value_bytes), block_size)
