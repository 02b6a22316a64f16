"""Benchmark what a form costs in fluency, with the poem's length held equal.

`poetstudio eval --form` compares each form's base perplexity with free verse's, but a free poem
runs to ten lines where a haiku has three, and a token deep in a poem is easier to predict than
one near its start. This reads a saved report's `eval.json` (every formed poem and its seed is kept
there; free verse's with `--form free`), pairs each formed poem with the free poem of the same
model and seed, and scores under the raw base, as eval does: the formed poem, the whole free poem,
and the free poem cut to the formed poem's number of lines. It prints each form's perplexity
against both, so the cost of the form can be told from the cost of being short; and the same for
EmoLex fidelity (the share of poems whose EmoLex label is the model's emotion), since a short poem
has fewer words to carry its emotion.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_form_fluency.py --home DATA_HOME
      REPORT_FOLDER/eval.json [--forms quatrain haiku] [--n 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.evalrun import base_losses, base_model_info  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from trainer.common.emotions import NEUTRAL, count_emotions, label_counts  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402
from trainer.evaluation.metrics import EVAL_PROMPTS, EVAL_SEED, EvalCase, fluency_ppl  # noqa: E402


def first_lines(text: str, count: int) -> str:
    """The first `count` lines of a poem that hold words, with the stanza breaks between them."""
    kept: list[str] = []
    seen = 0
    for line in text.splitlines():
        if seen == count:
            break
        kept.append(line)
        seen += bool(line.strip())
    return "\n".join(kept).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the bundled models.")
    parser.add_argument("report", help="A `poetstudio eval --form free ...` report's eval.json.")
    parser.add_argument("--forms", nargs="+", help="Forms to score (default: all but free).")
    parser.add_argument("--n", type=int, help="Score only each model's first N poems.")
    args = parser.parse_args()

    import models

    report = json.loads(Path(args.report).read_text())
    # As eval's form table: the emotion models, not neutral.
    rows = [row for row in report["results"] if row.get("form") and row["target"] != NEUTRAL]
    free = {
        (row["target"], row["name"].rsplit(",", 1)[0]): row for row in rows if row["form"] == "free"
    }
    if not free:
        sys.exit("the report has no free verse to compare with: run eval with --form free too")
    forms = args.forms or sorted({row["form"] for row in rows} - {"free"})
    poet = Poet(DataHome(Path(args.home)), "cpu", bundled_dir=models.BUNDLED_DIR)
    base = base_model_info(poet, list(poet.refresh().values()))

    def case(seed: int) -> EvalCase:
        index = seed - EVAL_SEED
        return EvalCase(index, EVAL_PROMPTS[index % len(EVAL_PROMPTS)], seed)

    print(
        "| form | poems | lines | formed ppl | free ppl | x free | free, cut | x cut"
        " | formed EmoLex | free EmoLex | free, cut EmoLex |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for form in forms:
        formed_nll: list[float | None] = []
        free_nll: list[float | None] = []
        cut_nll: list[float | None] = []
        lines = 0
        hits = [0, 0, 0]  # EmoLex hits: formed, free, free cut
        for row in (row for row in rows if row["form"] == form):
            partner = free[(row["target"], row["name"].rsplit(",", 1)[0])]
            by_seed = dict(zip(partner["seeds"], partner["poems"], strict=True))
            pairs = list(zip(row["seeds"], row["poems"], strict=True))[: args.n]
            cases = [case(seed) for seed, _ in pairs]
            shaped = [(c, text) for c, (_, text) in zip(cases, pairs, strict=True)]
            whole = [(c, by_seed[c.seed]) for c in cases]
            counts = [sum(bool(line.strip()) for line in text.splitlines()) for _, text in shaped]
            cut = [(c, first_lines(text, k)) for (c, text), k in zip(whole, counts, strict=True)]
            formed_nll += base_losses(poet, base, shaped)
            free_nll += base_losses(poet, base, whole)
            cut_nll += base_losses(poet, base, cut)
            lines += sum(counts)
            for column, poems in enumerate((shaped, whole, cut)):
                labels = (label_counts(count_emotions(text)) for _, text in poems)
                hits[column] += sum(label == row["target"] for label in labels)
        shaped_ppl, free_ppl, cut_ppl = (
            fluency_ppl(n) or 0.0 for n in (formed_nll, free_nll, cut_nll)
        )
        n = len(formed_nll)
        print(
            f"| {form} | {n} | {lines / n:.1f} | {shaped_ppl:.1f} | {free_ppl:.1f}"
            f" | {shaped_ppl / free_ppl:.2f}x | {cut_ppl:.1f} | {shaped_ppl / cut_ppl:.2f}x"
            f" | {hits[0] / n:.0%} | {hits[1] / n:.0%} | {hits[2] / n:.0%} |"
        )


if __name__ == "__main__":
    main()
