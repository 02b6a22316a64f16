"""Run the numerics tests again, as a CPU of the other kind would run them.

`make test` calls this after the whole suite. The tests marked `numerics` (generation, batching,
guidance, precision, training, DDP) run once more with this CPU's native-bf16 answer flipped, so
that `auto` takes the other precision, and, where this CPU has AVX-512 kernels, with PyTorch,
MKL and oneDNN held to AVX2 ones. An AVX2 machine cannot imitate an AVX-512 one: there the
tests' own rule (exact equality only for the same arithmetic, tolerances elsewhere) protects.
Extra arguments go to pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys

from trainer.common.precision import NATIVE_BF16_ENV, cpu_has_native_bf16

AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
AVX2_ONLY["ONEDNN_MAX_CPU_ISA"] = "AVX2"


def main() -> int:
    """Run `pytest -m numerics` under the flipped answers; returns pytest's exit code."""
    import torch

    os.environ.pop(NATIVE_BF16_ENV, None)
    env = dict(os.environ)
    env[NATIVE_BF16_ENV] = "0" if cpu_has_native_bf16() else "1"
    shown = [f"{NATIVE_BF16_ENV}={env[NATIVE_BF16_ENV]}"]
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        env.update(AVX2_ONLY)
        shown += [f"{name}={value}" for name, value in AVX2_ONLY.items()]
    print(f"numerics tests again with {' '.join(shown)}", flush=True)
    command = [sys.executable, "-m", "pytest", "-q", "-m", "numerics", *sys.argv[1:]]
    return subprocess.call(command, env=env)


if __name__ == "__main__":
    sys.exit(main())
