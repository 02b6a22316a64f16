"""Benchmark formed against free verse: decoding tokens/s of the bundled models, side by side.

Each round writes one poem in every form (free first, then each formed one) from the same first
line and seed, on one loaded Poet, at the studio's default strength (guided: two rows per step).
A poem's rate is the tokens it kept (`GenerationStats.tokens`: form decoding discards no rows)
over the wall time of its stream, the first token included; the report gives medians over rounds
and each form's median as a share of free verse's (the form issue's target: at least 0.7x).
A first round warms the models and the form tables up and is not counted.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_form_speed.py --home DATA_HOME
      [--emotion joy] [--rounds 5] [--device cpu] [--forms free quatrain sonnet haiku]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402

FIRST_LINE = "The evening comes across the field"


def one_poem(poet: Poet, emotion: str, form: str, seed: int) -> tuple[int, float]:
    """(tokens kept, seconds) for one poem streamed in `form`."""
    params = SamplingParams(seed=seed, form=form)
    started = time.perf_counter()
    for _ in poet.stream_poem(emotion, FIRST_LINE, params):
        pass
    elapsed = time.perf_counter() - started
    stats = poet.last_stats
    assert stats is not None
    return stats.tokens, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the base model.")
    parser.add_argument("--emotion", default="joy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forms", nargs="+", default=["free", "quatrain", "sonnet", "haiku"])
    args = parser.parse_args()
    import models

    poet = Poet(DataHome(Path(args.home)), args.device, bundled_dir=models.BUNDLED_DIR)
    forms = ["free", *(f for f in args.forms if f != "free")]
    for form in forms:  # warm up: load the models, build each form's tables
        one_poem(poet, args.emotion, form, seed=0)
    rates: dict[str, list[float]] = {form: [] for form in forms}
    tokens: dict[str, list[int]] = {form: [] for form in forms}
    for round_index in range(1, args.rounds + 1):
        for form in forms:
            kept, seconds = one_poem(poet, args.emotion, form, seed=round_index)
            rates[form].append(kept / seconds)
            tokens[form].append(kept)
    free = statistics.median(rates["free"])
    report = {
        "emotion": args.emotion,
        "rounds": args.rounds,
        "device": args.device,
        "forms": {
            form: {
                "median_tokens_per_s": round(statistics.median(rates[form]), 2),
                "median_tokens": statistics.median(tokens[form]),
                "vs_free": round(statistics.median(rates[form]) / free, 3),
            }
            for form in forms
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
