"""Where a llama-backend decode step goes: one token through a llama.cpp context with and without
the emotion's LoRA adapter, on 1 and 2 threads, interleaved rounds, medians.

The anchor row of bench_generate.py is plain llama.cpp without LoRA; this shows how much of the
gap to it is the adapter itself (llama.cpp adds four graph nodes per adapted matrix: 840 for
smollm2's 210, each a sync point between threads) rather than the engine's work around it.

Run:  .venv/bin/python benchmarks/bench_llama_step.py [--home DATA_HOME] [--emotion joy]
      [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_generate import load_line, machine_line  # noqa: E402
from models import BUNDLED_DIR  # noqa: E402
from studio.core.generation.backends import llamacpp  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

PROMPT = [1, 504, 27, 3400, 359, 2052, 1121, 260, 30]


def step_ms(context: object, steps: int) -> float:
    """Median ms of one single-token decode after a short prompt (the cache cleared first)."""
    context.clear()  # type: ignore[attr-defined]
    context.decode([(0, PROMPT)], 0)  # type: ignore[attr-defined]
    times = []
    for index in range(steps):
        start = time.perf_counter()
        context.decode([(0, [30])], len(PROMPT) + index)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=None)
    parser.add_argument("--emotion", default="joy")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu", bundled_dir=BUNDLED_DIR)
    backend = poet._chosen("llama")[0]
    model = backend.load(poet.model_info(args.emotion))
    if not isinstance(model, llamacpp.LlamaModel):
        raise SystemExit(f"the {args.emotion} model does not run on llama.cpp here")
    print(machine_line())
    print(f"before: {load_line()}")
    context = llamacpp._Context(model.base)
    found: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for threads in (1, 2):
            for label, adapter in (("no LoRA", None), ("LoRA", model.adapter)):
                context.use(adapter, threads)
                found.setdefault((label, threads), []).append(step_ms(context, args.steps))
    context.use(None, 1)
    context.close()
    print(f"one decode step, medians of {args.rounds} rounds x {args.steps} steps:")
    for threads in (1, 2):
        plain = statistics.median(found[("no LoRA", threads)])
        lora = statistics.median(found[("LoRA", threads)])
        print(
            f"  {threads} thread(s): no LoRA {plain:.2f} ms, {args.emotion} LoRA {lora:.2f} ms "
            f"(+{lora - plain:.2f} ms, {lora / plain:.2f}x)"
        )
    print(f"after: {load_line()}")


if __name__ == "__main__":
    main()
