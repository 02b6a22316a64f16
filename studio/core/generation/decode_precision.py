"""The precision `auto` decodes in on a CPU: whichever of fp32 and bf16 decodes faster here, timed.

A CPU's flags do not say which is faster for decoding: on an AMD EPYC with AVX-512 BF16, bf16
weights decoded plain poems at 0.93x fp32's tokens/s, on an AVX2-only CPU at 0.20x
(benchmarks/bench_generate.py --bf16); and a guided step (two rows) can rank them the other way
round. So the first `auto` load on a CPU times a decode step of the model's own architecture (full
depth, stand-in weights, two LoRA adapters as the emotion and neutral rows of a guided step, one
thread) in each precision, a few seconds, and keeps the answer in the data home's
`cache/decode-precision.json`: one entry per CPU (name and flags), torch version, backend and model
shape, so a new torch, CPU or model is timed again and a backend adds its own entry. bf16 is taken
only when it is clearly faster (fp32 rounds less). On a GPU `auto` is as before (precision.py).

Overrides, first match wins: an explicit precision (`--precision fp32|bf16`); the environment
variable $POETSTUDIO_DECODE_PRECISION (fp32 or bf16); $POETSTUDIO_CPU_BF16 (1 or 0), which forces
the CPU's bf16 answer for training and decoding alike (the test suite pins `auto` with it, so tests
never time anything). A cache file that cannot be read is timed again and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.generation.machine import cpu_name
from trainer.common.atomic import atomic_write_json
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.precision import NATIVE_BF16_ENV, cpu_has_native_bf16

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

DECODE_PRECISION_ENV = "POETSTUDIO_DECODE_PRECISION"
CANDIDATES = ("fp32", "bf16")
CACHE_FORMAT = 1
# bf16 must beat fp32 by this factor to be chosen: the timing is noisy and fp32 rounds less.
BF16_MARGIN = 0.95
# Blocks of steps, one precision each: a step untimed first, then timed steps. A close call gets
# fp32 on both sides of bf16, so a machine that gets busier or quieter meanwhile does not decide.
BLOCKS = ("fp32", "bf16", "fp32")
WARM_STEPS, TIMED_STEPS = 1, 3
ROWS = 2  # the default decode is guided: the emotion and neutral rows in one forward
LORA_RANK = 16  # `poetstudio train`'s default rank
PROMPT = 8  # positions in the KV cache before the timed steps, as after a short first line


def cache_file(home: DataHome) -> Path:
    """Where the timed answers are kept."""
    return home.root / "cache" / "decode-precision.json"


def _cpu_flags() -> str:
    """A short digest of this CPU's feature flags (/proc/cpuinfo), or "" where there are none."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return hashlib.sha256(" ".join(sorted(value.split())).encode()).hexdigest()[:12]
    return ""


def cache_key(backend: str, config: PretrainedConfig) -> str:
    """The entry for this CPU, torch version, `backend` and model shape."""
    import torch

    shape = "/".join(
        str(getattr(config, name, "?"))
        for name in ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers")
    )
    shape += f"/vocab {getattr(config, 'vocab_size', '?')}"
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"{cpu_name()} flags {_cpu_flags() or '?'} {capability} | torch {torch.__version__} | "
        f"backend {backend} | {shape}"
    )


def _pinned() -> str | None:
    """The precision the environment pins `auto` to on a CPU, or None (then it is timed)."""
    forced = os.environ.get(DECODE_PRECISION_ENV)
    if forced is not None:
        value = forced.strip().lower()
        if value not in CANDIDATES:
            raise PoetstudioError(
                f"${DECODE_PRECISION_ENV} must be {' or '.join(CANDIDATES)}, not {forced!r}"
            )
        return value
    if NATIVE_BF16_ENV in os.environ:
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return None


def _read_entries(path: Path) -> dict[str, Any] | None:
    """The cache's entries, or None when the file is missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return None
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else None


def _cached_choice(entry: object) -> str | None:
    """The precision an entry names, or None for a damaged one."""
    if isinstance(entry, dict) and entry.get("precision") in CANDIDATES:
        return str(entry["precision"])
    return None


def choose(step_ms: dict[str, float]) -> str:
    """The precision to decode in, from the milliseconds a step took in each."""
    return "bf16" if step_ms["bf16"] < BF16_MARGIN * step_ms["fp32"] else "fp32"


def measured_precision(
    home: DataHome,
    config: PretrainedConfig,
    backend: str = "torch",
    announce: Callable[[], None] | None = None,
) -> str:
    """fp32 or bf16: what `auto` decodes in on this CPU for a model of `config` on `backend`.

    Pinned by the environment, else the cached answer, else timed now (`announce` is called
    first) and cached; should the timing fail, the CPU's flags decide, as they did before.
    """
    pinned = _pinned()
    if pinned is not None:
        return pinned
    path = cache_file(home)
    key = cache_key(backend, config)
    entries = _read_entries(path)
    cached = _cached_choice(entries.get(key)) if entries is not None else None
    if cached is not None:
        return cached
    if announce is not None:
        announce()
    try:
        step_ms = measure(backend, config)
    except Exception:  # a model the timing cannot run: go by the flags, and time again next load
        return "bf16" if cpu_has_native_bf16() else "fp32"
    precision = choose(step_ms)
    fresh = dict(entries or {})
    fresh[key] = {
        "precision": precision,
        "step_ms": {name: round(ms, 3) for name, ms in step_ms.items()},
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(OSError):  # a read-only home: time again next run, decode now
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"format": CACHE_FORMAT, "entries": fresh})
    return precision


def measure(backend: str, config: PretrainedConfig) -> dict[str, float]:
    """Milliseconds per decode step in each candidate precision, timed now on this CPU."""
    if backend != "torch":
        raise PoetstudioError(f"the {backend} backend has no decode-step timing")
    return _torch_step_ms(config)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Time on one thread: a steadier figure on a shared machine, and the ratio is what counts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _without_initialisation() -> contextlib.AbstractContextManager[object]:
    """transformers' switch that skips weight initialisation (another version: none, slower)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        return contextlib.nullcontext()
    return no_init_weights()


def _stand_in_model(config: PretrainedConfig) -> torch.nn.Module:
    """A model of `config`'s architecture on the CPU with stand-in weights: norms 1, the rest
    a repeated tile of small uniform noise (transformers' own random initialisation took seconds
    for a 135M model here; a step's time depends on the values only through denormals, which
    weights of a trained model's scale do not produce)."""
    import torch
    from transformers import AutoModelForCausalLM

    with _without_initialisation():
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tile = torch.empty(1 << 16).uniform_(-0.035, 0.035, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() < 2:
                parameter.fill_(1.0)
                continue
            flat = parameter.view(-1)
            whole = flat.numel() // tile.numel()
            flat[: whole * tile.numel()].view(whole, tile.numel()).copy_(tile.expand(whole, -1))
            flat[whole * tile.numel() :] = tile[: flat.numel() - whole * tile.numel()]
    return model.eval()


def _ratio(times: dict[str, list[float]]) -> float:
    """bf16's median step time over fp32's."""
    return statistics.median(times["bf16"]) / statistics.median(times["fp32"])


def _with_adapters(model: torch.nn.Module) -> Any:
    """`model` with an emotion and a neutral LoRA adapter on every linear layer, at the rank
    `poetstudio train` gives them (peft's initialisation, on a private random stream)."""
    import torch
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        peft = get_peft_model(model, lora, adapter_name="emotion")
        peft.add_adapter("neutral", lora)
    return peft.eval()


def _torch_step_ms(config: PretrainedConfig) -> dict[str, float]:
    """The torch backend's guided decode step as the loader prepares it (column-major weights,
    the emotion and neutral adapters as rows of one forward), in fp32 and bf16."""
    import torch

    from studio.core import fastlora
    from studio.core.loader import _cache_argument, _column_major_weights

    times: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    with _one_thread():
        peft = _with_adapters(_stand_in_model(config))
        layers = fastlora.lora_layers(peft)
        model = peft.get_base_model()
        cache_arg = _cache_argument(model)
        prompt = torch.ones((ROWS, PROMPT), dtype=torch.long)
        step = torch.ones((ROWS, 1), dtype=torch.long)
        for block, name in enumerate(BLOCKS):
            with torch.no_grad():
                peft.to(dtypes[name])
                _column_major_weights(model)
                fastlora.install_rows(layers, ["emotion", "neutral"][:ROWS])
            with torch.inference_mode():
                out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
                cache = getattr(out, cache_arg)
                for index in range(WARM_STEPS + TIMED_STEPS):
                    start = time.perf_counter()
                    out = model(
                        input_ids=step, use_cache=True, logits_to_keep=1, **{cache_arg: cache}
                    )
                    if index >= WARM_STEPS:
                        times[name].append((time.perf_counter() - start) * 1000)
                    cache = getattr(out, cache_arg)
            if block == 1 and not 0.8 < _ratio(times) < 1.25:
                break  # a clear answer (bf16 emulated, or clearly faster): no need to look closer
        del model, peft, layers
    return {name: statistics.median(values) for name, values in times.items()}
