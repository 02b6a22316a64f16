"""Measure the pronouncing dictionary's load time and the spelling-rule syllable estimate.

- load: a fresh Python process imports trainer.common.phonetics and reads the dictionary
  (gzip + parse); medians over rounds.
- estimate: `estimate_syllables` against CMU on held-out words. The rules were tuned by looking at
  the words whose CRC32 is not 0 mod 5 ("dev"); the held-out words (CRC32 = 0 mod 5) were scored
  only after. A word counts as right when the estimate equals any of its CMU counts. Two sets:
  every plain-letter CMU word, and the held-out words that are also in EmoLex (common English).

Run:  .venv/bin/python benchmarks/bench_phonetics.py [--rounds 5] [--split dev|test]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
from trainer.common import phonetics
phonetics.dictionary()
print(time.perf_counter() - started)
"""


def load_seconds(rounds: int) -> list[float]:
    """Seconds for import + dictionary read, each in a fresh process."""
    code = _CHILD.format(root=str(ROOT))
    out = []
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        done.check_returncode()
        out.append(float(done.stdout.strip()))
    return out


def estimate_accuracy(split: str) -> dict[str, dict[str, float]]:
    """Exact and within-one shares of the estimate on the chosen split."""
    from trainer.common import phonetics
    from trainer.common.emotions import lexicon

    common = set(lexicon())
    table = phonetics.dictionary()
    scored: dict[str, list[tuple[int, frozenset[int]]]] = {"all": [], "emolex": []}
    for word in table:
        if not re.fullmatch(r"[a-z]+", word):
            continue
        held_out = zlib.crc32(word.encode()) % 5 == 0
        if held_out != (split == "test"):
            continue
        counts = phonetics.syllable_counts(word)
        guess = phonetics.estimate_syllables(word)
        scored["all"].append((guess, counts))
        if word in common:
            scored["emolex"].append((guess, counts))
    result = {}
    for name, rows in scored.items():
        exact = sum(guess in counts for guess, counts in rows)
        near = sum(any(abs(guess - c) <= 1 for c in counts) for guess, counts in rows)
        result[name] = {
            "words": len(rows),
            "exact": round(exact / len(rows), 4),
            "within_1": round(near / len(rows), 4),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    args = parser.parse_args()
    seconds = load_seconds(args.rounds)
    print(
        json.dumps(
            {
                "load_seconds_median": round(statistics.median(seconds), 3),
                "load_seconds": [round(s, 3) for s in seconds],
                "estimate": estimate_accuracy(args.split),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
