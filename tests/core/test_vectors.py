"""The step's quick vector reads (NumPy on the CPU) give torch's answers exactly: at the edges
of a float32 floor, on ties and on non-finite values, and through torch for what NumPy cannot
read (bf16)."""

from __future__ import annotations

import pytest
import torch

from studio.core.generation.vectors import all_finite, any_finite, at_least, row_argmax

INF = float("inf")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_finiteness_matches_torch(dtype: torch.dtype) -> None:
    cases = [[1.0, 2.0], [1.0, INF], [-INF, -INF], [float("nan"), 1.0], [-INF, 0.5]]
    for values in cases:
        tensor = torch.tensor([values, values], dtype=dtype)
        assert all_finite(tensor) == bool(torch.isfinite(tensor).all())
        assert any_finite(tensor[0]) == bool(torch.isfinite(tensor[0]).any())


@pytest.mark.parametrize("floor", [1e-4, 1e-5, 0.1 / 49_152, 3e-5])
def test_at_least_keeps_torchs_tokens_at_a_float32_floor(floor: float) -> None:
    edge = torch.tensor(floor, dtype=torch.float32)
    below = torch.nextafter(edge, torch.tensor(0.0))
    above = torch.nextafter(edge, torch.tensor(1.0))
    values = torch.rand(5000, generator=torch.Generator().manual_seed(1)) * floor * 2
    values[:3] = torch.stack([below, edge, above])
    expected = torch.nonzero(values >= floor).flatten()
    assert torch.equal(at_least(values, floor), expected)
    assert torch.equal(
        at_least(values.bfloat16(), floor), torch.nonzero(values.bfloat16() >= floor).flatten()
    )


def test_row_argmax_takes_the_first_of_tied_maxima_like_torch() -> None:
    rows = torch.zeros(3, 1000)
    rows[0, [7, 300]] = 5.0
    rows[1, [999, 2]] = -1.0
    rows[1] -= 2.0
    rows[2, 500:] = 9.0
    assert torch.equal(row_argmax(rows), rows.argmax(dim=-1))
    assert row_argmax(rows).tolist() == [7, 0, 500]
