"""Benchmark guided decoding's cost: the guidance step before and after it scored only candidates.

Side by side in one run, interleaved round by round (the order rotating) on one loaded base with
the bundled joy and neutral adapters, medians over the rounds:
- plain decoding (strength 0), guided decoding as guidance scores now (only the tokens that can be
  chosen), and guided decoding with the guidance step as it was before (every token scored, then
  masked: tests/helpers/guidance_reference.py); tokens/s and the guided/plain ratios;
- the guidance step alone, before and after, on the very rows those guided poems produced
  (microseconds per step: steadier than tokens/s on a shared machine);
- with --bf16, plain and guided decoding with bf16 weights in the same rounds, and a guided
  forward alone in each precision, alternating step by step (what `auto`'s timing should agree
  with);
- with --precision-timing, what `auto`'s one-time timing of fp32 and bf16 decode steps finds on
  this CPU and how long it takes (studio/core/generation/decode_precision.py).
The CPU (model, torch capability, bf16 flags) and the load average before and after are printed:
the machines these run on are shared, so read the figures beside the load.

Run:  .venv/bin/python benchmarks/bench_guidance.py [--home DATA_HOME] [--tokens 64] [--rounds 5]
      [--precision fp32|bf16] [--decode-threads N] [--bf16] [--precision-timing]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_generate import fixed_tokens  # noqa: E402
from studio.core.generation import processors  # noqa: E402
from studio.core.generation.backends.torch_peft import torch_threads  # noqa: E402
from studio.core.generation.machine import cpu_name  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.processors import guidance  # noqa: E402
from studio.core.generation.settings import DEFAULT_STRENGTH, SamplingParams  # noqa: E402
from tests.helpers.guidance_reference import ReferenceGuidance  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

FIRST_LINE = "The lamps are out along the quay"
EMOTION = "joy"


def build_before(plan: Any, state: Any) -> Any:
    """The guidance step as it was before, where guidance applies."""
    if len(plan.weights) == 1 and plan.strength == 0:
        return None
    return ReferenceGuidance(plan.weights, plan.strength)


def cpu_line() -> str:
    """The CPU by name, torch's kernel level and its native bf16 flags."""
    import torch

    flags = [
        name
        for name, check in (
            ("avx512_bf16", "_is_avx512_bf16_supported"),
            ("amx", "_is_amx_tile_supported"),
        )
        if getattr(torch.cpu, check, lambda: False)()
    ]
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} {capability}, " + (
        f"native bf16 ({', '.join(flags)})" if flags else "no native bf16"
    )


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def run(poet: Poet, params: SamplingParams, rows: list[Any] | None = None) -> float:
    """One poem of exactly params.max_new_tokens tokens; its decoding tokens/s."""
    for _ in poet.stream_poem(EMOTION, FIRST_LINE, params):
        pass
    stats = poet.last_stats
    assert stats is not None and stats.tokens_per_s is not None
    return stats.tokens_per_s


def step_us(step: Any, rows: list[Any], repeats: int = 3) -> float:
    """Median microseconds of one guidance step over the recorded rows."""
    import torch

    from studio.core.generation.state import PoemState

    vocab = rows[0].shape[1]
    state = PoemState([0], torch.zeros(vocab, dtype=torch.bool), eos=0)
    times = []
    for _ in range(repeats):
        for logits in rows:
            state.rows = logits
            scores = logits[0].float().clone()
            start = time.perf_counter()
            step.rescore(state, scores, False)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def guided_step_ms(poets: dict[str, Poet], steps: int = 24) -> dict[str, float]:
    """Median ms of one guided forward (the emotion and neutral rows), one thread, each Poet's
    precision in turn step by step (the order alternating), so both see the same machine."""
    import torch

    batches = {
        name: poet.backend.rows(
            [poet.backend.load(poet.model_info(e)) for e in (EMOTION, "neutral")]
        )
        for name, poet in poets.items()
    }
    times: dict[str, list[float]] = {name: [] for name in poets}
    names = list(poets)
    with torch_threads(1), torch.inference_mode():
        for rows in batches.values():
            rows.forward(torch.ones((1, 8), dtype=torch.long))
        for index in range(steps + 2):  # two steps warm up
            for name in names if index % 2 else reversed(names):
                start = time.perf_counter()
                batches[name].forward(torch.ones((1, 1), dtype=torch.long))
                if index >= 2:
                    times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH)
    parser.add_argument("--decode-threads", type=int, default=None)
    parser.add_argument("--precision-timing", action="store_true")
    parser.add_argument(
        "--bf16", action="store_true", help="also decode plain and guided with bf16 weights"
    )
    args = parser.parse_args()
    if args.bf16 and args.precision == "bf16":
        parser.error("--bf16 compares bf16 with --precision fp32")

    import torch

    print(f"CPU: {cpu_line()}")
    print(f"before: {load_line()}")
    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu", precision=args.precision)
    poet.decode_threads = args.decode_threads
    poet.load(EMOTION)
    params = fixed_tokens(args.tokens)
    guided = replace(params, strength=args.strength)
    after_build = processors.PROCESSORS[0]
    assert after_build is guidance.build

    recorded: list[Any] = []
    original = guidance.Guidance.rescore

    def recording(self: Any, state: Any, scores: Any, relaxed: bool) -> Any:
        if len(recorded) < 512:
            recorded.append(state.rows.clone())
        return original(self, state, scores, relaxed)

    def plain_run() -> float:
        return run(poet, params)

    def after_run() -> float:
        processors.PROCESSORS[0] = after_build
        guidance.Guidance.rescore = recording  # type: ignore[method-assign]
        try:
            return run(poet, guided)
        finally:
            guidance.Guidance.rescore = original  # type: ignore[method-assign]

    def before_run() -> float:
        processors.PROCESSORS[0] = build_before
        try:
            return run(poet, guided)
        finally:
            processors.PROCESSORS[0] = after_build

    kinds = {"plain": plain_run, "guided, after": after_run, "guided, before": before_run}
    if args.bf16:
        half = Poet(home, device="cpu", precision="bf16")
        half.decode_threads = args.decode_threads
        half.load(EMOTION)
        kinds["plain, bf16"] = lambda: run(half, params)
        kinds["guided, bf16"] = lambda: run(half, guided)
    rates: dict[str, list[float]] = {name: [] for name in kinds}
    names = list(kinds)
    for round_index in range(args.rounds + 1):  # round 0 warms up and is not counted
        shift = round_index % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            rate = kinds[name]()
            if round_index:
                rates[name].append(rate)
    median = {name: statistics.median(values) for name, values in rates.items()}

    threads = args.decode_threads or "automatic"
    print(
        f"{args.precision} weights, torch threads {torch.get_num_threads()}, decoding threads "
        f"{threads}; medians of {args.rounds} interleaved rounds x {args.tokens} tokens, "
        f"strength {args.strength:g}"
    )
    for name in names:
        spread = f"{min(rates[name]):.1f}-{max(rates[name]):.1f}"
        print(f"  {name:<16} {median[name]:6.2f} tokens/s  (range {spread})")
    for name in ("guided, before", "guided, after"):
        print(f"  {name} / plain: {median[name] / median['plain']:.3f}x")
    print(f"  after / before: {median['guided, after'] / median['guided, before']:.3f}x")
    if args.bf16:
        step_ms = guided_step_ms({args.precision: poet, "bf16": half})
        shown = ", ".join(f"{name} {ms:.1f} ms" for name, ms in step_ms.items())
        print(
            f"  a guided forward alone, 1 thread, step by step: {shown} = "
            f"{step_ms['bf16'] / step_ms[args.precision]:.3f}x"
        )
        for name in ("plain", "guided"):
            ratio = median[f"{name}, bf16"] / median[name if name == "plain" else "guided, after"]
            print(f"  {name}: bf16 / {args.precision}: {ratio:.3f}x")

    before_step = ReferenceGuidance((1.0,), args.strength)
    after_step = guidance.Guidance((1.0,), args.strength)
    cost = {"before": [], "after": []}  # type: dict[str, list[float]]
    # On the threads the guided poems decoded on: torch's sort and top-k run in parallel, and
    # on a busy machine a parallel op waits for its threads.
    stats = poet.last_stats
    step_threads = stats.cpu_threads if stats is not None else None
    with torch_threads(step_threads):
        for _ in range(3):  # interleaved again
            cost["before"].append(step_us(before_step, recorded))
            cost["after"].append(step_us(after_step, recorded))
    before_us, after_us = (statistics.median(cost[k]) for k in ("before", "after"))
    print(
        f"guidance step alone on {len(recorded)} recorded guided steps, {step_threads or 'all'} "
        f"threads: before {before_us:.0f} us, "
        f"after {after_us:.0f} us ({before_us / after_us:.1f}x less)"
    )

    if args.precision_timing:
        from transformers import AutoConfig

        from studio.core.generation import decode_precision
        from trainer.common.bases import resolve_base

        info = poet.model_info(EMOTION)
        config = AutoConfig.from_pretrained(resolve_base(info.base_spec, home))
        start = time.perf_counter()
        step_ms = decode_precision.measure("torch", config)
        took = time.perf_counter() - start
        shown = ", ".join(f"{name} {ms:.1f} ms" for name, ms in step_ms.items())
        print(
            f"auto's timing of a guided decode step (1 thread): {shown} -> "
            f"{decode_precision.choose(step_ms)}; took {took:.1f} s"
        )
    print(f"after: {load_line()}")


if __name__ == "__main__":
    main()
