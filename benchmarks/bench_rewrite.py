"""Benchmark rewriting a line (CoWriter.rewrite) on held-out poems: does the rerank pick lines that
fit what follows?

Held-out poems: the `clean` dataset's "valid" split. A poem's split is decided by the hash of its
text (trainer/corpus/dataset.py `split_of`), so the same poem is "valid" in `clean` and in
`clean-m2` too, and every bundled adapter trained on "train" poems only (models/*/poetstudio.json:
`dataset.train_poems`). The base (SmolLM2-135M) was pretrained elsewhere, on data we cannot list.

For M poems (one of the 8 emotion labels, 4 to 16 lines, at most 100 words as in training), picked
by --seed, a middle line N (not the first nor the last, also by --seed) is rewritten with the
poem's label's emotion model: K candidates from the lines before, reranked by the emotion model's
likelihood of the lines after (studio/core/cowrite/rerank.py). The reranked pick is the first
after the rerank; the unreranked pick is the first sampled candidate (row 0).

Then the raw BASE model (no adapter) scores, for X in {original line, reranked pick, unreranked
pick}, the perplexity of the lines after N given the lines before N and X. Reported: means and
medians, and paired win shares (lower perplexity wins) with a bootstrap 95% interval over poems.
The first --show rewrites are written to --out to be read.

Run:  .venv/bin/python benchmarks/bench_rewrite.py --home DATA_HOME [--m 48] [--k 4] [--seed 21]
      [--threads N] [--show 20] [--out rewrites.md] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.cowrite.poemtext import line_ids, poem_ids, poem_lines  # noqa: E402
from studio.core.cowrite.writer import CoWriter  # noqa: E402
from studio.core.generation.machine import cpu_name  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from studio.core.registry import ModelInfo  # noqa: E402
from trainer.common.bases import resolve_base  # noqa: E402
from trainer.common.emotions import EMOTIONS  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402
from trainer.corpus.dataset import iter_poems  # noqa: E402
from trainer.training.manifest import ModelManifest  # noqa: E402

MIN_LINES, MAX_LINES = 4, 16
MAX_WORDS = 100  # the bundled models trained on poems of at most 100 words
CHOICES = ("original", "reranked", "unreranked")


@dataclass
class Case:
    """One rewrite: the poem around line N, the candidates, and the base's perplexities."""

    poem_id: str
    emotion: str
    number: int  # line N, 1-based
    before: list[str]
    original: str
    after: list[str]
    candidates: list[dict[str, Any]] = field(default_factory=list)  # ranked, best first
    reranked: str = ""
    unreranked: str = ""
    ppl: dict[str, float] = field(default_factory=dict)


def held_out(home: DataHome, dataset: str, m: int, seed: int) -> list[Case]:
    """`m` held-out poems and a middle line of each, chosen by `seed`."""
    pool = []
    for record in iter_poems(home, dataset, split="valid", labels=EMOTIONS):
        lines = poem_lines(record.text)
        written = [line for line in lines if line]
        if MIN_LINES <= len(written) <= MAX_LINES and record.words <= MAX_WORDS:
            pool.append((record.id, record.label, lines))
    pool.sort()
    rng = random.Random(seed)
    cases = []
    for poem_id, label, lines in rng.sample(pool, m):
        indexes = [i for i, line in enumerate(lines) if line]
        number = rng.randint(2, len(indexes) - 1)
        at = indexes[number - 1]
        cases.append(Case(poem_id, label, number, lines[:at], lines[at], lines[at + 1 :]))
    print(f"{len(pool)} held-out poems fit; took {m}")
    return cases


def rewrite(poet: Poet, case: Case, k: int, seed: int) -> None:
    """K candidates for line N, reranked; the reranked and the unreranked pick."""
    lines = [*case.before, case.original, *case.after]
    writer = CoWriter(poet, case.emotion, SamplingParams(seed=seed), lines)
    for _ in writer.rewrite(case.number, k):
        pass
    ranked = writer.candidates
    case.candidates = [
        {"row": c.row, "text": c.text, "follow_logprob": c.follow_logprob} for c in ranked
    ]
    case.reranked = ranked[0].text
    case.unreranked = min(ranked, key=lambda c: c.row).text


def base_info(poet: Poet) -> ModelInfo:
    """The raw base the bundled adapters sit on."""
    specs = {info.base_spec for info in poet.scan.models.values()}
    if len(specs) != 1:
        raise SystemExit(f"the models must share one base, not {sorted(specs)}")
    spec = specs.pop()
    folder = Path(resolve_base(spec, poet.home))
    return ModelInfo("base", folder, "base", "full", spec, ModelManifest(method="full"))


def score(poet: Poet, cases: list[Case]) -> None:
    """The base's perplexity of the lines after N, given the lines before and each choice."""
    import torch

    loaded = poet.loader.load(base_info(poet))
    device = loaded.exempt.device
    with poet.loader.lock, torch.inference_mode():
        poet.loader.activate(loaded)
        for case in cases:
            following = [t for line in case.after for t in line_ids(loaded, line)]
            for choice in CHOICES:
                context = poem_ids(loaded, [*case.before, getattr(case, choice)])
                ids = (context + following)[: loaded.context]
                logits = loaded.module(input_ids=torch.tensor([ids], device=device)).logits[0]
                losses = torch.nn.functional.cross_entropy(
                    logits[:-1].float(), torch.tensor(ids[1:], device=device), reduction="none"
                )
                case.ppl[choice] = math.exp(float(losses[len(context) - 1 :].mean()))


def paired(cases: list[Case], a: str, b: str, seed: int, draws: int = 2000) -> dict[str, Any]:
    """How often `a` has a lower base perplexity than `b` (ties: the same line, counted apart),
    with a bootstrap 95% interval of the win share among poems where they differ, and of the
    mean log-perplexity difference (a - b; below 0: `a` fits better)."""
    wins = [c.ppl[a] < c.ppl[b] for c in cases if getattr(c, a) != getattr(c, b)]
    diffs = [math.log(c.ppl[a]) - math.log(c.ppl[b]) for c in cases]
    rng = random.Random(seed)
    shares, means = [], []
    for _ in range(draws):
        if wins:
            sample = rng.choices(wins, k=len(wins))
            shares.append(sum(sample) / len(sample))
        means.append(statistics.fmean(rng.choices(diffs, k=len(diffs))))
    shares.sort()
    means.sort()

    def interval(values: list[float]) -> list[float] | None:
        if not values:
            return None
        return [values[int(0.025 * len(values))], values[int(0.975 * len(values)) - 1]]

    return {
        "differ": len(wins),
        "ties": len(cases) - len(wins),
        "wins": sum(wins),
        "win_share": sum(wins) / len(wins) if wins else None,
        "win_share_95": interval(shares),
        "mean_log_ppl_diff": statistics.fmean(diffs),
        "mean_log_ppl_diff_95": interval(means),
    }


def show(cases: list[Case], path: Path) -> None:
    """The rewrites to read: before / original / reranked / unreranked / after."""
    out = [
        "# Rewrites to read (benchmarks/bench_rewrite.py)",
        "",
        "Base perplexity of the lines after, given each choice, in brackets.",
        "",
    ]
    for number, case in enumerate(cases, start=1):
        out.append(f"## {number}. {case.poem_id} ({case.emotion}), line {case.number}")
        out.append("")
        out.extend(f"    {line}" for line in case.before)
        for choice in CHOICES:
            text = getattr(case, choice)
            same = " (= reranked)" if choice == "unreranked" and text == case.reranked else ""
            out.append(f"  {choice:>10} [{case.ppl[choice]:7.1f}]{same}: {text}")
        out.extend(f"    {line}" for line in case.after)
        out.append("")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", default=None)
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--m", type=int, default=48, help="held-out poems")
    parser.add_argument("--k", type=int, default=4, help="candidates per rewrite")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--show", type=int, default=20, help="rewrites written to --out")
    parser.add_argument("--out", default="rewrites.md")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu")
    if args.threads:
        poet.decode_threads = args.threads
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, backend {poet.backend.name}")
    cases = held_out(home, args.dataset, args.m, args.seed)
    started = time.perf_counter()
    for index, case in enumerate(cases):
        rewrite(poet, case, args.k, args.seed + index)
        if (index + 1) % 8 == 0:
            elapsed = time.perf_counter() - started
            print(f"  {index + 1}/{len(cases)} rewritten, {elapsed:.0f} s", flush=True)
    rewrite_s = time.perf_counter() - started
    score(poet, cases)
    report: dict[str, Any] = {
        "cpu": cpu_name(),
        "backend": poet.backend.name,
        "m": len(cases),
        "k": args.k,
        "seed": args.seed,
        "rewrite_s": rewrite_s,
        "reranked_is_unreranked": sum(c.reranked == c.unreranked for c in cases),
        "ppl": {
            choice: {
                "mean": statistics.fmean(c.ppl[choice] for c in cases),
                "median": statistics.median(c.ppl[choice] for c in cases),
            }
            for choice in CHOICES
        },
        "reranked_vs_unreranked": paired(cases, "reranked", "unreranked", args.seed),
        "reranked_vs_original": paired(cases, "reranked", "original", args.seed),
        "unreranked_vs_original": paired(cases, "unreranked", "original", args.seed),
    }
    print(f"\n{len(cases)} rewrites, K={args.k}, {rewrite_s:.0f} s to write and rerank")
    print("Base perplexity of the lines after line N, given the lines before and:")
    for choice in CHOICES:
        row = report["ppl"][choice]
        print(f"  {choice:>10}  mean {row['mean']:7.1f}   median {row['median']:7.1f}")
    for name in ("reranked_vs_unreranked", "reranked_vs_original", "unreranked_vs_original"):
        row = report[name]
        share = "-" if row["win_share"] is None else f"{row['win_share']:.1%}"
        low_high = row["win_share_95"]
        band = "" if low_high is None else f" [{low_high[0]:.1%}, {low_high[1]:.1%}]"
        diff = row["mean_log_ppl_diff_95"]
        print(
            f"  {name}: {row['wins']}/{row['differ']} lower = {share}{band}"
            f" ({row['ties']} the same line); mean log-ppl diff"
            f" {row['mean_log_ppl_diff']:+.3f} [{diff[0]:+.3f}, {diff[1]:+.3f}]"
        )
    show(cases[: args.show], Path(args.out))
    print(f"\nThe first {min(args.show, len(cases))} rewrites: {args.out}")
    if args.json:
        report["cases"] = [asdict(c) for c in cases]
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
