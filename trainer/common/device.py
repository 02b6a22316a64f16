"""Choosing where models run: cuda, then mps, then cpu, unless the user names one."""

from __future__ import annotations

from trainer.common.errors import PoetstudioError

DEVICES = ("cuda", "mps", "cpu")


def pick_device(override: str | None = None) -> str:
    """Return the device to use: `override` if given and available, else the best one present."""
    import torch

    if override:
        name = override.strip().lower()
        kind = name.split(":")[0]
        if kind not in DEVICES:
            choices = ", ".join(DEVICES)
            raise PoetstudioError(f"unknown device {override!r}; choose one of: {choices}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise PoetstudioError("--device cuda was asked for, but no CUDA GPU is available")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise PoetstudioError("--device mps was asked for, but MPS is not available")
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"
