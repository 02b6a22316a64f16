"""Quick reads of one step's vocabulary-sized score vectors: finiteness, row maxima, the tokens
above a floor.

Every token pays for these. On the CPU they go through NumPy, on the tensor's own memory: torch's
CPU kernels for them take 5 to 20 times longer on a 49,152-token vector (one thread, this
project's machines: `isfinite(...).all()` over 2 rows 143 us against 8 us, a row argmax 56 us
against 6 us, a `nonzero` 90 us against 10 us). The answers are the same either way: each is an
exact comparison or the first index of a maximum, with no rounding. Elsewhere (a GPU, or a dtype
NumPy has no type for, such as bf16) torch does them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _numpy(tensor: torch.Tensor) -> Any:
    """`tensor` as a NumPy array on the same memory, or None where NumPy cannot read it."""
    import torch

    if tensor.device.type != "cpu" or tensor.dtype not in (torch.float32, torch.float64):
        return None
    return tensor.detach().numpy()


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite (no NaN, no inf)."""
    import torch

    array = _numpy(tensor)
    if array is None:
        return bool(torch.isfinite(tensor).all())
    import numpy as np

    return bool(np.isfinite(array).all())


def any_finite(tensor: torch.Tensor) -> bool:
    """Whether some value is finite (something is left to choose)."""
    import torch

    array = _numpy(tensor)
    if array is None:
        return bool(torch.isfinite(tensor).any())
    import numpy as np

    return bool(np.isfinite(array).any())


def row_argmax(rows: torch.Tensor) -> torch.Tensor:
    """The index of each row's maximum ([rows, vocab] -> [rows]); the first one on a tie.
    NaN-free rows only (the chain checks that first)."""
    array = _numpy(rows)
    if array is None:
        return rows.argmax(dim=-1)
    import torch

    return torch.from_numpy(array.argmax(axis=-1))


def at_least(values: torch.Tensor, floor: float) -> torch.Tensor:
    """The indices of the values >= `floor` (1-D), ascending."""
    import torch

    array = _numpy(values)
    if array is None:
        return torch.nonzero(values >= floor).flatten()
    import numpy as np

    return torch.from_numpy(np.flatnonzero(array >= floor))
