"""Benchmark formed against free verse: decoding tokens/s of the bundled models, side by side.

Each round writes one poem in every form (free first, then each formed one) from the same first
line and seed, on one loaded Poet, at the studio's default strength (guided: two rows per step).
A poem's rate is the tokens it kept (`GenerationStats.tokens`; the tokens of line tries not
kept count only in the time) over the wall time of its stream, the first token included; the
report gives medians over rounds and each form's median as a share of free verse's (the form
issue's target: at least 0.7x), with the lines written again and the tokens discarded in all.
Each formed poem is written once per `--line-tries` value. A first round warms the models and the
form tables up and is not counted.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_form_speed.py --home DATA_HOME
      [--emotion joy] [--rounds 5] [--device cpu] [--forms free quatrain sonnet haiku]
      [--line-tries 1 3]
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


def one_poem(poet: Poet, emotion: str, form: str, seed: int, tries: int) -> tuple[float, ...]:
    """(tokens kept, seconds, lines written again, tokens discarded) of one poem in `form`."""
    params = SamplingParams(seed=seed, form=form, line_tries=tries)
    started = time.perf_counter()
    for _ in poet.stream_poem(emotion, FIRST_LINE, params):
        pass
    elapsed = time.perf_counter() - started
    stats = poet.last_stats
    assert stats is not None
    return stats.tokens, elapsed, stats.rewritten_lines, stats.discarded_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the base model.")
    parser.add_argument("--emotion", default="joy")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--forms", nargs="+", default=["free", "quatrain", "sonnet", "haiku"])
    parser.add_argument("--line-tries", nargs="+", type=int, default=[SamplingParams.line_tries])
    args = parser.parse_args()
    import models

    poet = Poet(DataHome(Path(args.home)), args.device, bundled_dir=models.BUNDLED_DIR)
    runs = [("free", "free", 1)]
    for form in (f for f in args.forms if f != "free"):
        runs += [(f"{form} tries={tries}", form, tries) for tries in args.line_tries]
    for _, form, tries in runs:  # warm up: load the models, build each form's tables
        one_poem(poet, args.emotion, form, 0, tries)
    rates: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    tokens: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    again: dict[str, list[float]] = {label: [0, 0] for label, _, _ in runs}
    for round_index in range(1, args.rounds + 1):
        for label, form, tries in runs:
            kept, seconds, rewritten, discarded = one_poem(
                poet, args.emotion, form, round_index, tries
            )
            rates[label].append(kept / seconds)
            tokens[label].append(kept)
            again[label][0] += rewritten
            again[label][1] += discarded
    free = statistics.median(rates["free"])
    report = {
        "emotion": args.emotion,
        "rounds": args.rounds,
        "device": args.device,
        "forms": {
            label: {
                "median_tokens_per_s": round(statistics.median(rates[label]), 2),
                "median_tokens": statistics.median(tokens[label]),
                "vs_free": round(statistics.median(rates[label]) / free, 3),
                "lines_rewritten": again[label][0],
                "tokens_discarded": again[label][1],
            }
            for label, _, _ in runs
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
