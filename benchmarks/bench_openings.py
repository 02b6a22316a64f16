"""How poems written from nothing open, without and with the opening rule, side by side.

Writes poems with no first line (seeds 0 to n-1, each emotion and form given) once with the
opening processor (studio/core/generation/processors/poem_opening.py) left out of the chain and
once with it, in batches, and counts the openings that begin mid-word or in lowercase, with a
space or a line break, or on punctuation, digits or a dash; the bad ones are printed.
`--count FILE.jsonl` instead counts the poems of a `poetstudio write --format jsonl` run.

Run:  .venv/bin/python benchmarks/bench_openings.py --home DATA_HOME [-n 10]
      [--emotions sadness joy] [--forms free quatrain] [--backend llama]
      .venv/bin/python benchmarks/bench_openings.py --count poems.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import BUNDLED_DIR  # noqa: E402
from studio.core.batch import PoemRequest, write_poems  # noqa: E402
from studio.core.generation import processors  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.processors import poem_opening  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402


def opening_kind(text: str) -> str:
    """How a poem's text opens: "capital", "quote" (opening marks, then a capital), or what is
    wrong with it ("whitespace", "lowercase", "punctuation")."""
    if text[:1].isspace():
        return "whitespace"
    rest = text.lstrip("".join(poem_opening.OPENING_MARKS))
    if "A" <= rest[:1] <= "Z":
        return "capital" if rest == text else "quote"
    return "lowercase" if rest[:1].islower() else "punctuation"


def count(poems: list[str]) -> str:
    """One line: how many poems open well, then each wrong kind and its openings."""
    kinds = Counter(opening_kind(text) for text in poems)
    bad = [text for text in poems if opening_kind(text) not in ("capital", "quote")]
    good = kinds["capital"] + kinds["quote"]
    wrong = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()) if k not in ("capital", "quote"))
    shown = " | ".join(repr(text[:24]) for text in bad)
    return f"{len(bad)}/{len(poems)} bad ({wrong or 'none'}); {good} good; {shown}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("-n", type=int, default=10, help="seeds per emotion and form")
    parser.add_argument("--emotions", nargs="+", default=["sadness", "joy"])
    parser.add_argument("--forms", nargs="+", default=["free", "quatrain"])
    parser.add_argument("--backend", default="llama")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--count", type=Path, help="count the poems of a jsonl file instead")
    args = parser.parse_args()
    if args.count:
        lines = args.count.read_text(encoding="utf-8").splitlines()
        print(count([json.loads(line)["text"] for line in lines if line.strip()]))
        return
    if args.home is None:
        parser.error("--home is needed to write poems")
    poet = Poet(DataHome(args.home), args.device, bundled_dir=BUNDLED_DIR)
    requests = [
        PoemRequest(emotion, "", SamplingParams(seed=seed, form=form, backend=args.backend))
        for form in args.forms
        for emotion in args.emotions
        for seed in range(args.n)
    ]
    for arm in ("without", "with"):
        chain = processors.PROCESSORS
        kept = [b for b in chain if arm == "with" or b is not poem_opening.build]
        processors.PROCESSORS = kept
        try:
            poems = [text for text, _ in write_poems(poet, requests)]
        finally:
            processors.PROCESSORS = chain
        print(f"{arm} the opening rule: {count(poems)}")


if __name__ == "__main__":
    main()
