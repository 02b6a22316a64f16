"""What the stutter guard costs: building its table once per tokenizer, then per decoded token.

Run:  .venv/bin/python benchmarks/bench_stutter_cost.py --tokenizer FOLDER [--rounds 5]
(FOLDER: a converted base, e.g. DATA_HOME/bases/smollm2-135m). Prints the table's build time and
the median over rounds of adjust + observe per token while following a 10-line poem.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.stutter import StutterGuard, word_table  # noqa: E402

POEM = (
    "The morning light is on the sea\nWhere the lone mother's eyes cry forlorn\n"
    "And her grief makes many a mournful sound\nAs we come and go through the dark blue abysses\n"
    "Of the deeps of the abyss, wherein\nNo human eye could see,\nBut there she sits like a "
    "mother,\nFor whom, lost in a long longing,\nSo weary all her years,\nShe turns upon the "
    "pale moon,\n"
)


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    started = time.perf_counter()
    word_table(tokenizer)
    print(f"table: {time.perf_counter() - started:.2f} s for {len(tokenizer)} tokens")
    ids = tokenizer.encode(POEM, add_special_tokens=False)
    scores = torch.randn(len(tokenizer))
    per_token = []
    for _ in range(args.rounds):
        guard = StutterGuard(tokenizer)
        started = time.perf_counter()
        for token in ids:
            guard.adjust(scores)
            guard.observe(token)
        per_token.append((time.perf_counter() - started) / len(ids) * 1e3)
    print(f"adjust + observe: {statistics.median(per_token):.3f} ms per token (median)")


if __name__ == "__main__":
    main()
