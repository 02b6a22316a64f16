"""Benchmark co-writing (studio/core/cowrite/) on the bundled models, side by side in one run.

Measures, as medians over interleaved rounds (the machine may be shared: ratios matter more than
absolute times):
- K = 1, 3 and 8 candidates of one line at a fixed token count (line breaks masked, so every row
  writes exactly --tokens tokens), guided at the default strength: the wall time of each K and
  its ratio to K = 1 (targets: K=3 at most 1.5x, K=8 at most 3x);
- the first token of the next candidates (K=3) after accepting line 12 of a poem, warm, with the
  same emotion: a typed line (only the new line is read; target 150 ms; also until every row
  has its first token), a candidate accepted as it stands (its rows are kept: nothing is read),
  and apart, after the emotion changes (the whole poem is read again);
- `--use WORD` and `--rhyme-with WORD` hit rates over N candidates spread over the 8 emotions,
  words from benchmarks/cowrite_nouns.txt (targets: 90% use the word; 95% end on a CMU rhyme),
  and how many hits are tacked on: the word right after sentence-final punctuation ("gate.
  chapel"), or the line's last word right after any punctuation ("the gate, chapel"); with a
  sample of candidates printed to read (--samples, one per call, spread over the calls).

Run:  .venv/bin/python benchmarks/bench_cowrite.py [--home DATA_HOME] [--rounds 7] [--tokens 16]
      [--n 200] [--threads N] [--backend auto|torch|llama] [--skip-speed] [--skip-steer]
      [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.cowrite.opening import LineOpening  # noqa: E402
from studio.core.cowrite.writer import CoWriter  # noqa: E402
from studio.core.generation.machine import cpu_name  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from studio.core.generation.steer import Steer  # noqa: E402
from trainer.common import phonetics  # noqa: E402
from trainer.common.emotions import EMOTIONS  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

NOUNS = ROOT / "benchmarks" / "cowrite_nouns.txt"
POEM = [
    "The lamps are out along the quay,",
    "and the grey sea sighs beneath the stars;",
    "the boats are sleeping in the bay",
    "and the wind is singing of the bars.",
    "",
    "I walked the shore when I was young",
    "and heard the water call my name;",
    "the gulls were crying and they sung",
    "of ships that sailed and never came.",
    "",
    "",
    "Now all the harbour lights are low,",
    "the tide is turning to the deep;",
    "the lanterns of the fishers glow",
]
NEXT_LINES = [
    "and I have promises to keep.",
    "the stars are fading as I sleep.",
    "the night is long and I must weep.",
    "and still the waves begin to creep.",
]
FIRST_LINES = [
    "The lamps are out along the quay",
    "I walked alone beneath the trees",
    "The morning broke upon the hill",
    "Within the house the clocks are still",
    "We came at dusk into the town",
]


class FixedTokens(LineOpening):
    """Masks line breaks and the poem's end at every token: every row writes exactly the line's
    token budget, so K=1, 3 and 8 do the same work per row."""

    def rescore(self, state: Any, scores: Any, relaxed: bool) -> Any:
        return scores.masked_fill(self._mask(scores), float("-inf"))

    def _mask(self, scores: Any) -> Any:
        from studio.core.generation.vocabulary import mask_tensor

        return mask_tensor(self.flags, scores.device)


class FixedWriter(CoWriter):
    """A CoWriter whose candidates never end before their token budget."""

    def _decodes(self, plan: Any, count: int, started: float, start: int = 0) -> Any:
        from studio.core.generation.vocabulary import token_table

        decodes = super()._decodes(plan, count, started, start)
        for decode in decodes:
            decode.chain.processors.append(FixedTokens(token_table(plan.model)))
        return decodes


# Punctuation that closes a sentence, and any that a word may stand after.
_FINAL = ".!?;:"
_PUNCTUATION = _FINAL + ",\u2014-\u2013)\"'\u201d\u2019"


def tacked_on(text: str, word: str) -> bool:
    """Whether `word` stands in `text` right after sentence-final punctuation without opening a
    sentence ("gate. chapel"), or as its last word right after any punctuation ("the gate,
    chapel"): put there to be used, not where it fits."""
    matches = list(re.finditer(rf"(?<![\w'])({re.escape(word)})(?![\w'])", text, re.IGNORECASE))
    last = bool(matches) and not re.search(r"[A-Za-z]", text[matches[-1].end() :])
    for match in matches:
        before = text[: match.start()].rstrip()
        if before and before[-1] in _FINAL and (text[match.start()].islower() or last):
            return True
        if match is matches[-1] and last and before and before[-1] in _PUNCTUATION:
            return True
    return False


BACKEND = {"choice": "auto"}  # --backend


def _params(seed: int) -> SamplingParams:
    """The runs' settings: a fixed seed, on the chosen backend."""
    return SamplingParams(seed=seed, backend=BACKEND["choice"])


def nouns() -> list[str]:
    """The benchmark's words."""
    lines = NOUNS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_k(poet: Poet, rounds: int, tokens: int) -> dict[str, Any]:
    """Wall time of one line of `tokens` tokens for K = 1, 3, 8 (the poem already read)."""
    writer = FixedWriter(poet, "joy", _params(1), POEM[:4])
    writer.line_tokens = tokens
    writer.write(1)  # load, read the poem, warm up
    times: dict[int, list[float]] = {1: [], 3: [], 8: []}
    for _ in range(rounds):
        for k in times:
            started = time.perf_counter()
            candidates = writer.write(k)
            times[k].append(time.perf_counter() - started)
            assert all(len(c.tokens) == tokens for c in candidates), "fixed tokens"
    base = statistics.median(times[1])
    return {
        f"k{k}": {"median_ms": median_ms(v), "ratio": statistics.median(v) / base}
        for k, v in times.items()
    }


def first_token_ms(writer: CoWriter, every: list[float] | None = None) -> float:
    """From asking for K=3 candidates to the first row's first token (and, into `every`, to
    every row's first token)."""
    cancel = threading.Event()
    started = time.perf_counter()
    stream = writer.stream(3, cancel=cancel)
    next(stream)
    elapsed = time.perf_counter() - started
    if every is not None:
        next(stream)
        next(stream)  # rows 1 and 2 step on the same scores, before any forward
        every.append(time.perf_counter() - started)
    cancel.set()
    for _ in stream:
        pass
    return elapsed


def bench_accept(poet: Poet, rounds: int) -> dict[str, Any]:
    """First token after accepting line 12: same emotion (the new line read) and after an
    emotion change (the poem read again), interleaved."""
    writer = CoWriter(poet, "joy", _params(1), POEM)
    writer.accept(NEXT_LINES[-1])
    writer.write(1)
    poet.load("sadness")
    same: list[float] = []
    same_all: list[float] = []
    changed: list[float] = []
    chosen: list[float] = []
    read_same: list[int] = []
    read_changed: list[int] = []
    read_chosen: list[int] = []
    for index in range(rounds):
        writer.undo()
        candidates = writer.write(3)
        pick = next((c for c in candidates if c.ended == "newline"), candidates[0])
        writer.accept(pick.text, pick)
        chosen.append(first_token_ms(writer))
        read_chosen.append(writer.cache.reads[-1])
        writer.undo()
        writer.accept(NEXT_LINES[index % len(NEXT_LINES)])
        same.append(first_token_ms(writer, same_all))
        read_same.append(writer.cache.reads[-1])
        writer.emotion = "sadness" if writer.emotion == "joy" else "joy"
        changed.append(first_token_ms(writer))
        read_changed.append(writer.cache.reads[-1])
    return {
        "same_emotion": {"median_ms": median_ms(same), "tokens_read": read_same[-1]},
        "same_emotion_all_rows": {"median_ms": median_ms(same_all), "tokens_read": read_same[-1]},
        "emotion_changed": {"median_ms": median_ms(changed), "tokens_read": read_changed[-1]},
        "candidate_as_it_stands": {"median_ms": median_ms(chosen), "tokens_read": read_chosen[-1]},
        "poem_lines": sum(1 for line in writer.lines if line),
    }


def bench_steer(
    poet: Poet, n: int, k: int, shown: int, fields: tuple[str, ...] = ("use", "rhyme_with")
) -> dict[str, Any]:
    """Hit rates of --use and --rhyme-with over `n` candidates spread over the 8 emotions, how
    many hits are tacked on, and `shown` candidates to read (the first of every few calls)."""
    words = nouns()
    calls = max(1, n // k)
    every = max(1, calls // max(shown, 1))
    results: dict[str, Any] = {}
    for field in fields:
        hits = total = tacked = 0
        samples: list[str] = []
        misses: list[str] = []
        for call in range(calls):
            emotion = EMOTIONS[call % len(EMOTIONS)]
            word = words[call % len(words)]
            first = FIRST_LINES[call % len(FIRST_LINES)]
            writer = CoWriter(poet, emotion, _params(100 + call), [first])
            candidates = writer.write(k, Steer(**{field: word}))
            for candidate in candidates:
                said = phonetics.words_of(candidate.text)
                if field == "use":
                    hit = word in said
                else:
                    hit = bool(said) and phonetics.rhymes(said[-1], word)
                hits += hit
                total += 1
                if hit:
                    target = word if field == "use" else said[-1]
                    tacked += tacked_on(candidate.text, target)
                line = f"[{emotion} {field}={word}] {first} / {candidate.text}"
                if len(samples) < shown and call % every == 0 and candidate.row == 0:
                    samples.append(line)
                if not hit and len(misses) < 8:
                    misses.append(line)
        results[field] = {"hits": hits, "n": total, "rate": hits / total if total else 0.0}
        results[field]["tacked_on"] = tacked
        results[field]["samples"] = samples
        results[field]["misses"] = misses
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", default=None)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--n", type=int, default=200, help="candidates per steering field")
    parser.add_argument("--k", type=int, default=5, help="candidates per call when steering")
    parser.add_argument("--samples", type=int, default=20, help="steered candidates printed")
    parser.add_argument("--steer", default="use,rhyme_with", help="the steering fields measured")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "llama"))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-steer", action="store_true")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    BACKEND["choice"] = args.backend
    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu")
    # A fixed thread count: K=1, 3 and 8 must run alike (the default follows how busy the CPU is).
    poet.decode_threads = args.threads or torch.get_num_threads()
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "threads": poet.decode_threads,
        "torch": torch.__version__,
        "model": poet.model_info("joy").path.name,
        "backend": args.backend,
    }
    print(
        f"CPU: {report['cpu']}, {report['threads']} threads, torch {report['torch']},"
        f" backend {args.backend}"
    )
    poet.load("joy")
    if not args.skip_speed:
        report["k"] = bench_k(poet, args.rounds, args.tokens)
        print(f"\nK candidates of one line, {args.tokens} tokens each (medians of {args.rounds})")
        for name, row in report["k"].items():
            print(f"  K={name[1:]:<2} {row['median_ms']:8.1f} ms   {row['ratio']:.2f}x K=1")
        report["accept"] = bench_accept(poet, args.rounds)
        accept = report["accept"]
        print(f"\nFirst token of K=3 candidates after accepting line {accept['poem_lines']}")
        for name in (
            "same_emotion",
            "same_emotion_all_rows",
            "candidate_as_it_stands",
            "emotion_changed",
        ):
            row = accept[name]
            print(f"  {name:<16} {row['median_ms']:8.1f} ms   (read {row['tokens_read']} tokens)")
    if not args.skip_steer:
        fields = tuple(args.steer.split(","))
        report["steer"] = bench_steer(poet, args.n, args.k, args.samples, fields)
        for field, row in report["steer"].items():
            print(f"\n--{field.replace('_', '-')}: {row['hits']}/{row['n']} = {row['rate']:.1%}")
            print(f"  tacked on after punctuation: {row['tacked_on']}/{row['hits']} hits")
            for line in row["samples"]:
                print("   ", line)
            if row["misses"]:
                print("  misses:")
                for line in row["misses"]:
                    print("   ", line)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
