"""Measured truth about the emotion models: fidelity, diversity, memorisation and length.

Generation is passed in as a function, so this module stays free of any UI and of the studio;
the `poetstudio eval` command wires the studio's sampler into it. The prompts and seeds are fixed,
so that runs are comparable.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.emotions import MIXED, NEUTRAL, count_emotions, label_counts

# The bos alone, then first lines chosen to carry no EmoLex emotion word of their own, so that
# whatever emotion a poem shows comes from the model. A test checks that each is labelled neutral.
EVAL_PROMPTS: tuple[str, ...] = (
    "",
    "The evening comes across the field",
    "I walked along the river road",
    "There is a house upon the hill",
    "The morning light is on the sea",
    "She opened the window",
    "A boat lies on the sand",
    "We sat beside the stream",
    "Under the old bridge",
    "The train goes north",
)
EVAL_SEED = 1234
SPAN_TOKENS = 8
DEFAULT_N = 50
QUICK_N = 10

_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class EvalCase:
    """One generation the evaluation asks for: a first line and the seed that samples it."""

    index: int
    first_line: str
    seed: int


def eval_cases(n: int) -> list[EvalCase]:
    """The fixed list of `n` cases: prompts in turn, each with its own fixed seed."""
    return [
        EvalCase(i, EVAL_PROMPTS[i % len(EVAL_PROMPTS)], EVAL_SEED + i) for i in range(max(0, n))
    ]


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _norm_line(line: str) -> str:
    return " ".join(_words(line))


def _span_hash(words: list[str]) -> int:
    digest = hashlib.blake2b(" ".join(words).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class TrainingIndex:
    """Verbatim lines and hashed word 8-grams of a training set, for memorisation checks."""

    def __init__(self, poems: Iterable[str], span: int = SPAN_TOKENS) -> None:
        self.span = span
        self.lines: set[str] = set()
        self.spans: set[int] = set()
        for text in poems:
            words: list[str] = []
            for line in text.splitlines():
                norm = _norm_line(line)
                if norm:
                    self.lines.add(norm)
                words.extend(_words(line))
            for start in range(len(words) - span + 1):
                self.spans.add(_span_hash(words[start : start + span]))

    def copied_line(self, line: str) -> bool:
        """Whether `line` occurs verbatim (ignoring case and punctuation) in the training set."""
        norm = _norm_line(line)
        return bool(norm) and norm in self.lines

    def copied_span(self, text: str) -> bool:
        """Whether `text` contains any run of `span` words copied from the training set."""
        words = _words(text)
        return any(
            _span_hash(words[start : start + self.span]) in self.spans
            for start in range(len(words) - self.span + 1)
        )


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts' words (0 when there are none)."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = _words(text)
        grams.extend(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class ModelEval:
    """The evaluation of one model against one target emotion."""

    name: str
    target: str
    n: int
    labels: dict[str, int]
    fidelity: float  # share labelled the target; mixed counts as a miss
    fidelity_excl_mixed: float | None  # the same share among poems not labelled mixed
    distinct_1: float
    distinct_2: float
    copied_lines: float  # share of generated lines found verbatim in the training set
    copied_span_poems: float  # share of poems with a copied 8-word span
    mean_lines: float
    mean_words: float
    val_loss: float | None = None
    val_ppl: float | None = None
    samples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON report."""
        return asdict(self)


def score_poems(
    name: str,
    target: str,
    poems: list[tuple[EvalCase, str]],
    index: TrainingIndex | None,
) -> ModelEval:
    """Score generated poems: each is (case, full poem text including its first line)."""
    labels: Counter[str] = Counter()
    continuations: list[str] = []
    line_total = copied = span_hits = 0
    words_total = lines_total = 0
    for case, text in poems:
        labels[label_counts(count_emotions(text))] += 1
        body = _strip_first_line(text, case.first_line)
        continuations.append(body)
        lines = [line for line in text.splitlines() if line.strip()]
        lines_total += len(lines)
        words_total += len(_words(text))
        if index is not None:
            body_lines = [line for line in body.splitlines() if _norm_line(line)]
            line_total += len(body_lines)
            copied += sum(index.copied_line(line) for line in body_lines)
            span_hits += index.copied_span(body)
    n = len(poems)
    hits = labels[target] + (labels[MIXED] if target == NEUTRAL else 0)
    non_mixed = n - labels[MIXED]
    return ModelEval(
        name=name,
        target=target,
        n=n,
        labels=dict(sorted(labels.items())),
        fidelity=hits / n if n else 0.0,
        fidelity_excl_mixed=(labels[target] / non_mixed) if non_mixed else None,
        distinct_1=distinct_n(continuations, 1),
        distinct_2=distinct_n(continuations, 2),
        copied_lines=copied / line_total if line_total else 0.0,
        copied_span_poems=span_hits / n if n and index is not None else 0.0,
        mean_lines=lines_total / n if n else 0.0,
        mean_words=words_total / n if n else 0.0,
        samples=[text for _, text in poems[:3]],
    )


def _strip_first_line(text: str, first_line: str) -> str:
    """The part of a poem the model wrote: everything after the given first line."""
    if first_line and text.lstrip().startswith(first_line.strip()):
        return text.lstrip()[len(first_line.strip()) :].lstrip("\n")
    return text


def generate_cases(
    generate: Callable[[EvalCase], str],
    n: int,
    on_poem: Callable[[int, int], None] | None = None,
) -> list[tuple[EvalCase, str]]:
    """Run `generate` over the fixed cases, reporting (done, total) after each poem."""
    cases = eval_cases(n)
    poems = []
    for done, case in enumerate(cases, start=1):
        poems.append((case, generate(case)))
        if on_poem is not None:
            on_poem(done, len(cases))
    return poems


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _bar(value: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "·" * (width - filled)


def render_markdown(results: list[ModelEval], command: str, header: dict[str, Any]) -> str:
    """The Markdown report: the full table, then a text bar chart of fidelity per model."""
    lines = [
        "# poetstudio evaluation",
        "",
        f"Produced by `{command}`.",
        "",
        *(f"- {key}: {value}" for key, value in header.items()),
        "",
        "Fidelity: share of generated poems whose EmoLex label is the target emotion (mixed counts"
        " as a miss; for neutral, neutral or mixed counts as a hit). Copied lines: share of"
        f" generated lines found verbatim in the training set; copied spans: share of poems with"
        f" any {SPAN_TOKENS}-word span from it.",
        "",
        "| model | target | N | fidelity | excl. mixed | distinct-1 | distinct-2 | copied lines"
        " | copied spans | lines | words | val ppl |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ppl = f"{r.val_ppl:.1f}" if r.val_ppl is not None else "—"
        lines.append(
            f"| {r.name} | {r.target} | {r.n} | {_pct(r.fidelity)} | {_pct(r.fidelity_excl_mixed)}"
            f" | {r.distinct_1:.2f} | {r.distinct_2:.2f} | {100 * r.copied_lines:.1f}%"
            f" | {_pct(r.copied_span_poems)} | {r.mean_lines:.1f} | {r.mean_words:.1f} | {ppl} |"
        )
    width = max((len(r.name) for r in results), default=0)
    lines += ["", "## Fidelity per model", "", "```"]
    lines += [f"{r.name:<{width}}  {_bar(r.fidelity)} {_pct(r.fidelity):>4}" for r in results]
    lines += ["```", ""]
    return "\n".join(lines)
