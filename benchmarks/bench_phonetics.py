"""Measure the pronouncing dictionary's load time and the spelling-rule syllable estimate.

- load: a fresh Python process imports trainer.common.phonetics and reads the dictionary
  (gzip + parse); medians over rounds.
- estimate: `estimate_syllables` against CMU on held-out words. The rules were tuned by looking at
  the words whose CRC32 is not 0 mod 5 ("dev"); the held-out words (CRC32 = 0 mod 5) were scored
  only after. A word counts as right when the estimate equals any of its CMU counts. Two sets:
  every plain-letter CMU word, and the held-out words that are also in EmoLex (common English).
- sonnets: trainer/evaluation/formscore on two human sonnets (Shakespeare 18 and 73, public
  domain), an anchor for what the form targets ask of generated ones.
- tokens (with --tokenizer FOLDER): studio/core/formtokens' one-off costs on a real vocabulary:
  the token table, the rhyme vocabulary and its index, a budget mask, a rhyme trie.

Run:  .venv/bin/python benchmarks/bench_phonetics.py [--rounds 5] [--split dev|test]
      [--tokenizer ~/.local/share/poetstudio/bases/smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
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


SONNETS = [
    """Shall I compare thee to a summer's day?
Thou art more lovely and more temperate:
Rough winds do shake the darling buds of May,
And summer's lease hath all too short a date;
Sometime too hot the eye of heaven shines,
And often is his gold complexion dimm'd;
And every fair from fair sometime declines,
By chance or nature's changing course untrimm'd;
But thy eternal summer shall not fade,
Nor lose possession of that fair thou ow'st;
Nor shall Death brag thou wander'st in his shade,
When in eternal lines to time thou grow'st:
So long as men can breathe or eyes can see,
So long lives this, and this gives life to thee.""",
    """That time of year thou mayst in me behold
When yellow leaves, or none, or few, do hang
Upon those boughs which shake against the cold,
Bare ruin'd choirs, where late the sweet birds sang.
In me thou see'st the twilight of such day
As after sunset fadeth in the west,
Which by and by black night doth take away,
Death's second self, that seals up all in rest.
In me thou see'st the glowing of such fire
That on the ashes of his youth doth lie,
As the death-bed whereon it must expire,
Consum'd with that which it was nourish'd by.
This thou perceiv'st, which makes thy love more strong,
To love that well which thou must leave ere long.""",
]


def sonnet_scores() -> dict[str, float | int | None]:
    """The form measures of the two sonnets, pooled."""
    from trainer.common.form import parse_form
    from trainer.evaluation.formscore import poem_lines, score_poems

    return score_poems([poem_lines(s) for s in SONNETS], parse_form("sonnet")).to_dict()


def token_costs(folder: str) -> dict[str, float | int]:
    """Seconds for each one-off step of the token helpers on a real tokenizer."""
    from transformers import AutoTokenizer

    from studio.core import formtokens
    from trainer.common import phonetics

    tokenizer = AutoTokenizer.from_pretrained(folder)
    phonetics.dictionary()

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    out: dict[str, float | int] = {}
    started = time.perf_counter()
    table = formtokens.TokenTable.from_tokenizer(tokenizer)
    out["table_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    words = formtokens.vocabulary_words(table, encode)
    index = phonetics.RhymeIndex(words)
    out["vocabulary_and_index_seconds"] = time.perf_counter() - started
    out["vocabulary_words"] = len(words)
    step = formtokens.budget_step(formtokens.line_state("the night is dark and "), (10, 10))
    started = time.perf_counter()
    formtokens.budget_mask(table, step)
    out["first_mask_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    targets = formtokens.rhyme_targets(index, "fire", {1, 2})
    formtokens.RhymeTrie(targets, encode)
    out["targets_and_trie_seconds"] = time.perf_counter() - started
    out["fire_targets"] = len(targets)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--split", choices=["dev", "test"], default="test")
    parser.add_argument("--tokenizer", help="a tokenizer folder, to time the token helpers")
    args = parser.parse_args()
    seconds = load_seconds(args.rounds)
    report: dict[str, object] = {
        "load_seconds_median": round(statistics.median(seconds), 3),
        "load_seconds": [round(s, 3) for s in seconds],
        "estimate": estimate_accuracy(args.split),
        "sonnets": sonnet_scores(),
    }
    if args.tokenizer:
        report["tokens"] = token_costs(str(Path(args.tokenizer).expanduser()))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
