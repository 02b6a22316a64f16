"""Benchmark batched writing (what `poetstudio eval` does): poems per second through each backend.

Each round writes the same poems, one per seed, with the eight bundled emotions in turn, from one
first line at the studio's default strength (guided: two rows a poem), through
`studio.core.batch.write_poems` on every backend in turn, one backend after the other in the same
round so that they share the machine's load. A round's rate is the poems' kept tokens over its wall
time; the report gives each backend's median over rounds and its ratio to the first backend's. A
first pass of one poem per emotion on each backend loads the models and is not counted.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_batch.py --home DATA_HOME
      [--poems 64] [--rounds 3] [--backends torch llama] [--max-rows 128]
      [--first-lines 10 --strengths 0 0.5 1 1.5 2]   (eval's mix of first lines and strengths)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_generate import load_line, machine_line  # noqa: E402

from studio.core.batch import MAX_ROWS, PoemRequest, write_poems  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.emotions import EMOTIONS  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402
from trainer.evaluation.metrics import EVAL_PROMPTS  # noqa: E402

FIRST_LINE = "The evening comes across the field"


def requests(
    poems: int, backend: str, first_lines: int = 1, strengths: tuple[float, ...] = (1.0,)
) -> list[PoemRequest]:
    """`poems` requests, seeds 0 up, the bundled emotions in turn; with `first_lines` above 1,
    eval's first lines in turn too (the first of them starts a poem from nothing), and the
    `strengths` in turn (strength 0: one row, unguided), as `poetstudio eval` mixes them."""
    lines = [FIRST_LINE] if first_lines == 1 else list(EVAL_PROMPTS[:first_lines])
    return [
        PoemRequest(
            EMOTIONS[seed % len(EMOTIONS)],
            lines[seed // len(EMOTIONS) % len(lines)],
            SamplingParams(
                seed=seed,
                strength=strengths[seed // (len(EMOTIONS) * len(lines)) % len(strengths)],
                backend=backend,
            ),
        )
        for seed in range(poems)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the base model.")
    parser.add_argument("--poems", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["torch", "llama"])
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS)
    parser.add_argument(
        "--first-lines", type=int, default=1, help="Cycle eval's first N first lines (1: one)."
    )
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    import models

    print(machine_line())
    poet = Poet(DataHome(Path(args.home)), "cpu", bundled_dir=models.BUNDLED_DIR)
    for backend in args.backends:
        write_poems(poet, requests(len(EMOTIONS), backend), max_rows=args.max_rows)
    rates: dict[str, list[float]] = {backend: [] for backend in args.backends}
    for round_ in range(args.rounds):
        for backend in args.backends:
            started = time.perf_counter()
            asked = requests(args.poems, backend, args.first_lines, tuple(args.strengths))
            written = write_poems(poet, asked, max_rows=args.max_rows)
            elapsed = time.perf_counter() - started
            tokens = sum(stats.tokens for _, stats in written)
            ran = {stats.backend for _, stats in written}
            rates[backend].append(tokens / elapsed)
            print(
                f"round {round_ + 1} {backend} (ran on {', '.join(sorted(ran))}): {tokens} tokens "
                f"in {elapsed:.1f} s, {tokens / elapsed:.1f} tokens/s; {load_line()}"
            )
    first = statistics.median(rates[args.backends[0]])
    print(
        f"{args.poems} poems a round, {args.first_lines} first line(s), strengths "
        f"{' '.join(f'{x:g}' for x in args.strengths)}, at most {args.max_rows} rows a batch, "
        "medians:"
    )
    for backend in args.backends:
        rate = statistics.median(rates[backend])
        print(f"  {backend:6s} {rate:7.1f} tokens/s  {rate / first:5.2f}x {args.backends[0]}")


if __name__ == "__main__":
    main()
