"""Precision: the dtype training's autocast runs in, and the dtype generation holds weights in.

Weights and optimizer state stay fp32; autocast runs matmuls in a 16-bit type where the hardware
does that natively: bf16 on CUDA GPUs that support it (fp16 with a GradScaler on older ones), and
bf16 on CPUs with AVX-512 BF16 or AMX, where it is about three times the fp32 matmul rate and
halves activation memory. Elsewhere training runs in plain fp32.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# Forces the CPU-feature answer below: "1" (native bf16) or "0" (none). The test suite runs its
# numerics tests under both answers on every machine; users can pin `auto` with it too (for
# training, and for decoding in place of the studio's timed choice).
NATIVE_BF16_ENV = "POETSTUDIO_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls in hardware (AVX-512 BF16 or AMX).

    $POETSTUDIO_CPU_BF16 set to 1 or 0 overrides what the CPU reports; any other value is a
    one-line error.
    """
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise PoetstudioError(f"${NATIVE_BF16_ENV} must be 1 or 0, not {forced!r}")
        return forced == "1"
    return cpu_reports_native_bf16()


def cpu_reports_native_bf16() -> bool:
    """What the CPU itself reports: AVX-512 BF16 or AMX, whatever $POETSTUDIO_CPU_BF16 says."""
    import torch

    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def check_precision(precision: str) -> str:
    """Return `precision` if it is one poetstudio knows, else raise a one-line error."""
    if precision not in PRECISIONS:
        raise PoetstudioError(
            f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}"
        )
    return precision


def _cuda_half(precision: str) -> torch.dtype:
    """The 16-bit dtype for a CUDA GPU under `precision` (auto or bf16): bf16 where it has it."""
    import torch

    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        raise PoetstudioError("this GPU has no bf16 support; use --precision fp16 or fp32")
    return torch.float16


def inference_dtype(device: str, precision: str = "auto") -> torch.dtype:
    """The dtype generation holds weights in on `device` under `precision`.

    auto: bf16 on GPUs that have it (else fp16), fp16 on MPS, bf16 on CPUs with native bf16 and
    fp32 on other CPUs, where bf16 is emulated (measured here on an AVX2-only CPU: a bf16 decoding
    step took about 10x as long as an fp32 one). The studio does not leave a CPU's `auto` to the
    flags: it times both and passes the faster (studio/core/generation/decode_precision.py).
    """
    import torch

    kind = device.split(":")[0]
    check_precision(precision)
    if precision == "fp32":
        return torch.float32
    if precision == "fp16":
        if kind not in ("cuda", "mps"):
            raise PoetstudioError("--precision fp16 needs a GPU; use bf16 or fp32")
        return torch.float16
    if kind == "cuda":
        return _cuda_half(precision)
    if kind == "mps":
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "bf16" or cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def training_dtype(device: str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for `device` under `precision`, or None for plain fp32."""
    import torch

    kind = device.split(":")[0]
    check_precision(precision)
    if precision == "fp32" or kind == "mps":
        return None
    if precision == "fp16":
        if kind != "cuda":
            raise PoetstudioError("--precision fp16 needs a CUDA GPU; use bf16 or fp32")
        return torch.float16
    if kind == "cuda":
        return _cuda_half(precision)
    if precision == "bf16" or cpu_has_native_bf16():
        return torch.bfloat16
    return None
