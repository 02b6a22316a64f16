"""Validation loss: the mean loss per real token over packed blocks, as training and eval report it.

It puts the model in eval mode for the measurement and hands it back in the mode it came in, so
callers (the training loop, `poetstudio eval`) need not restore anything themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.training.distributed import SINGLE, Ranks, all_sum, share
from trainer.training.packing import IGNORE, Packed

if TYPE_CHECKING:
    import torch


def validation_loss(
    model: torch.nn.Module,
    data: Packed,
    batch_size: int,
    device: str,
    dtype: torch.dtype | None,
    ranks: Ranks = SINGLE,
) -> float:
    """Mean validation loss per real token (padding excluded).

    On several ranks each measures its share of the blocks and the sums are added up, so every
    rank gets the same loss, the one a single process measures (up to float rounding).
    """
    import torch

    was_training = model.training
    model.eval()
    # Sums stay on the device; one read at the end instead of two host syncs per batch.
    # float64 like the Python float it replaces; MPS has no float64.
    wide = torch.float32 if device.startswith("mps") else torch.float64
    total = torch.zeros((), dtype=wide, device=device)
    count = torch.zeros((), dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            rows = share(data.blocks, ranks)
            for start in range(rows.start, rows.stop, batch_size):
                end = min(start + batch_size, rows.stop)
                ids = data.input_ids[start:end].to(device)
                labels = data.labels[start:end].to(device)
                with torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    logits = model(input_ids=ids).logits.float()
                targets = labels[:, 1:]
                total += torch.nn.functional.cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]),
                    targets.reshape(-1),
                    ignore_index=IGNORE,
                    reduction="sum",
                )
                count += (targets != IGNORE).sum()
    finally:
        model.train(was_training)
    total, count = all_sum(torch.stack([total, count.to(wide)]), ranks).tolist()
    return total / max(1, int(count))
