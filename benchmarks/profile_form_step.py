"""Profile where a formed poem's time goes: the model's forward against the token choice.

Writes one warm-up poem, then `--poems` more in `--form` with cProfile on, and prints the seconds
spent in the backend's forward and in the processor chain (`Chain.choose`) out of the whole, then
the functions with the most cumulative time. With `--first`, it also times the first formed poem
of the process (its tables built on the way) against the next one, to the first token and in all;
with `--prepared` as well, the tables are built before it by `Poet.prepare`, as the studio does
while the writer types, and the time that took is printed.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/profile_form_step.py --home DATA_HOME
      [--form sonnet] [--poems 3] [--line-tries 1] [--top 25] [--first [--prepared]]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402

FIRST_LINE = "The evening comes across the field"


def write(poet: Poet, form: str, seed: int, tries: int) -> tuple[float, float]:
    """(seconds to the first token, seconds in all) of one poem."""
    started = time.perf_counter()
    for _ in poet.stream_poem(
        "joy", FIRST_LINE, SamplingParams(seed=seed, form=form, line_tries=tries)
    ):
        pass
    stats = poet.last_stats
    assert stats is not None and stats.ttft_s is not None
    return stats.ttft_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the base model.")
    parser.add_argument("--form", default="sonnet")
    parser.add_argument("--poems", type=int, default=3)
    parser.add_argument("--line-tries", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--first", action="store_true", help="Time the first formed poem too.")
    parser.add_argument(
        "--prepared", action="store_true", help="Build the form's tables before the first poem."
    )
    args = parser.parse_args()
    import models

    poet = Poet(DataHome(Path(args.home)), "cpu", bundled_dir=models.BUNDLED_DIR)
    for _ in poet.stream_poem("joy", FIRST_LINE, SamplingParams(seed=0, max_new_tokens=4)):
        pass  # the models load here, not in the figures
    if args.prepared:
        started = time.perf_counter()
        poet.prepare("joy", SamplingParams(form=args.form, line_tries=args.line_tries))
        print(f"prepare {args.form}: {time.perf_counter() - started:.3f} s")
    first = write(poet, args.form, 0, args.line_tries)
    if args.first:
        second = write(poet, args.form, 0, args.line_tries)
        print(f"first {args.form}: {first[0]:.3f} s to the first token, {first[1]:.2f} s in all")
        print(f"next {args.form}:  {second[0]:.3f} s to the first token, {second[1]:.2f} s in all")
    profile = cProfile.Profile()
    profile.enable()
    for seed in range(1, args.poems + 1):
        write(poet, args.form, seed, args.line_tries)
    profile.disable()
    stats = pstats.Stats(profile)
    total = max(row[3] for row in stats.stats.values())  # type: ignore[attr-defined]
    by_name = {f"{key[0].split('/')[-1]}:{key[2]}": row[3] for key, row in stats.stats.items()}  # type: ignore[attr-defined]
    backends = ("llamacpp.py:forward", "torch_peft.py:forward")
    forward = max((by_name.get(name, 0.0) for name in backends), default=0.0)
    print(f"{args.poems} poems: {total:.2f} s profiled")
    print(f"  forward (backend): {forward:.2f} s")
    print(f"  token choice (Chain.choose): {by_name.get('chain.py:choose', 0.0):.2f} s")
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
