"""Precision choices under both answers to "does this CPU have native bf16?", on every machine."""

from __future__ import annotations

import pytest

from trainer.common.errors import PoetstudioError
from trainer.common.precision import (
    NATIVE_BF16_ENV,
    cpu_has_native_bf16,
    inference_dtype,
    training_dtype,
)

pytestmark = pytest.mark.numerics


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_cpu_answer_and_explicit_choices_do_not(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv(NATIVE_BF16_ENV, "1" if native else "0")
    assert cpu_has_native_bf16() is native
    half = torch.bfloat16 if native else torch.float32
    assert inference_dtype("cpu") == half
    assert training_dtype("cpu") == (torch.bfloat16 if native else None)
    assert inference_dtype("cpu", "fp32") == torch.float32
    assert training_dtype("cpu", "fp32") is None
    assert inference_dtype("cpu", "bf16") == torch.bfloat16
    assert training_dtype("cpu", "bf16") == torch.bfloat16


def test_without_the_override_the_cpu_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    reported = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert cpu_has_native_bf16() == reported


@pytest.mark.parametrize("value", ["yes", "", "2", "true"])
def test_a_bad_override_is_a_one_line_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, value)
    with pytest.raises(PoetstudioError, match=f"{NATIVE_BF16_ENV} must be 1 or 0"):
        cpu_has_native_bf16()
