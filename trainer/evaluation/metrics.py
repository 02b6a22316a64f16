"""Measured truth about the emotion models: fidelity, diversity, degeneration, memorisation,
fluency and length, and the rule that picks the default guidance strength from a sweep.

Generation, the semantic judge and the base model's perplexity are passed in (as a function, as
labels, as per-poem losses), so this module stays free of any UI and of the studio; the
`poetstudio eval` command wires them in. The prompts and seeds are fixed, so that runs compare.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.common.emotions import EMOTIONS, MIXED, NEUTRAL, count_emotions, label_counts
from trainer.common.perplexity import perplexity
from trainer.evaluation.stopwords import is_content_word

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

# Text no verse contains, which a sampler lets through from the base's web text: a digit glued to
# a letter, HTML tags and entities, Markdown links, emphasis and code fences, URL pieces and
# %-escapes, and U+FFFD (a token that cut a character's bytes apart).
_JUNK = re.compile(
    r"[^\W\d_]\d|\d[^\W\d_]"
    r"|</?[A-Za-z][^<>\n]*>|&#?\w+;"
    r"|\[[^\]\n]*\]\([^)\n]*\)|\*\*\S|\S\*\*|__\w|\w__|(?<![\w*])\*\w[^*\n]*\w\*(?![\w*])"
    r"|```|~~~"
    r"|\bhttps?\b|www\.|\.(?:com|org|net|html?)\b|%[0-9A-Fa-f]{2}"
    r"|\ufffd"
)
# A poem whose own words are fewer than half distinct is looping ("long long long time").
LOW_DISTINCT = 0.5
# A poem stutters when a word directly follows itself ("Hate, hate") or one content word (see
# trainer.evaluation.stopwords) comes this many times: within-poem distinct-1 misses both, as the
# repetition penalty spreads the repeats over a longer poem.
STUTTER_REPEATS = 4


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

    @classmethod
    def union(cls, indexes: list[TrainingIndex]) -> TrainingIndex:
        """One index over the training sets of `indexes` (which share one span)."""
        joined = cls([], indexes[0].span if indexes else SPAN_TOKENS)
        for index in indexes:
            if index.span != joined.span:
                raise ValueError("indexes of different spans cannot be joined")
            joined.lines |= index.lines
            joined.spans |= index.spans
        return joined

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


def poem_distinct_1(text: str) -> float:
    """Distinct words over words within one text (0 when it has none)."""
    words = _words(text)
    return len(set(words)) / len(words) if words else 0.0


def stutter_reason(text: str) -> str | None:
    """Why `text` stutters, e.g. `"hate hate"` or `"love x8"`, or None when it does not.

    Case and the punctuation or line breaks between words are ignored ("Hate, hate",
    "trust;\ntrust"); a word is a run of letters and apostrophes (' or ’) with a letter.
    """
    plain = text.replace("\u2019", "'")  # "truth’s" is one word, not "truth" and "s"
    words = [word for word in _words(plain) if any(ch.isalpha() for ch in word)]
    for first, second in zip(words, words[1:], strict=False):
        if first == second:
            return f"{first} {second}"
    counts = Counter(word for word in words if is_content_word(word))
    word, count = max(counts.items(), key=lambda item: item[1], default=("", 0))
    return f"{word} x{count}" if count >= STUTTER_REPEATS else None


def stutters(text: str) -> bool:
    """Whether a word of `text` directly follows itself or one content word comes 4+ times."""
    return stutter_reason(text) is not None


def has_junk(text: str) -> bool:
    """Whether `text` holds markup, a URL piece, a digit inside a word or a broken character."""
    return _JUNK.search(text) is not None


def fluency_ppl(nlls: Iterable[float | None]) -> float | None:
    """exp of the mean over poems of each poem's mean token loss: the geometric mean of the
    per-poem perplexities, so that every poem weighs the same whatever its length."""
    known = [nll for nll in nlls if nll is not None]
    return perplexity(sum(known) / len(known)) if known else None


@dataclass
class ModelEval:
    """The evaluation of one model against one target emotion, at one guidance strength."""

    name: str
    target: str
    n: int
    labels: dict[str, int]
    fidelity: float  # share labelled the target by EmoLex; mixed counts as a miss
    fidelity_excl_mixed: float | None  # the same share among poems not labelled mixed
    distinct_1: float  # over all poems' written parts together
    distinct_2: float
    poem_distinct_1: float  # mean over poems of each written part's own distinct-1
    low_distinct_poems: float  # share of poems whose own distinct-1 is below LOW_DISTINCT
    junk_poems: float  # share of poems with a junk token (see has_junk)
    stutter_poems: float  # share of poems that stutter (see stutter_reason)
    copied_lines: float  # share of generated lines found verbatim in the training set
    copied_span_poems: float  # share of poems with a copied 8-word span
    mean_lines: float
    mean_words: float
    strength: float | None = None  # guidance asked for; None where it does not apply
    strength_applied: float | None = None  # mean over poems of what the sampler applied
    judge_fidelity: float | None = None  # share the semantic judge labels the target
    judge_labels: dict[str, int] | None = None
    base_ppl: float | None = None  # fluency: the raw base's perplexity of the written parts
    val_loss: float | None = None
    val_ppl: float | None = None
    samples: list[str] = field(default_factory=list)
    form: str | None = None  # the form asked for (trainer.common.form); None: the studio's free
    form_score: dict[str, float | int | None] | None = None  # FormScore.to_dict over the poems
    seeds: list[int] = field(default_factory=list)  # each poem's seed, for paired comparisons
    hits: list[bool] = field(default_factory=list)  # each poem's EmoLex verdict
    judge_hits: list[bool] | None = None  # each poem's semantic-judge verdict
    poems: list[str] = field(default_factory=list)  # every poem, where a form was asked for

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON report."""
        return asdict(self)


def score_poems(
    name: str,
    target: str,
    poems: list[tuple[EvalCase, str]],
    index: TrainingIndex | None,
    judged: Sequence[str] | None = None,
    nlls: Sequence[float | None] | None = None,
    strength: float | None = None,
    form: str | None = None,
) -> ModelEval:
    """Score generated poems: each is (case, full poem text including its first line).

    `judged` is the semantic judge's label of each poem, `nlls` the raw base's mean token loss
    on each poem's written part (None for a poem with nothing written); either may be absent.
    `form` names the form the poems were asked for: their rhyme, syllables and meter are scored
    against it (trainer.evaluation.formscore), and every poem is kept for reading.
    """
    labels: Counter[str] = Counter()
    continuations: list[str] = []
    line_total = copied = span_hits = 0
    words_total = lines_total = 0
    own_distinct: list[float] = []
    junk = stutter = 0
    verdicts: list[bool] = []
    for case, text in poems:
        label = label_counts(count_emotions(text))
        labels[label] += 1
        verdicts.append(label == target or (target == NEUTRAL and label == MIXED))
        body = written_part(text, case.first_line)
        continuations.append(body)
        own_distinct.append(poem_distinct_1(body))
        junk += has_junk(body)
        stutter += stutters(text)
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
    judge_labels = dict(sorted(Counter(judged).items())) if judged is not None else None
    # The judge knows the 8 emotions only, so it has nothing to say about neutral.
    judge_fidelity = (
        (judge_labels.get(target, 0) / n if n else 0.0)
        if judge_labels is not None and target in EMOTIONS
        else None
    )
    return ModelEval(
        name=name,
        target=target,
        n=n,
        labels=dict(sorted(labels.items())),
        fidelity=hits / n if n else 0.0,
        fidelity_excl_mixed=(labels[target] / non_mixed) if non_mixed else None,
        distinct_1=distinct_n(continuations, 1),
        distinct_2=distinct_n(continuations, 2),
        poem_distinct_1=sum(own_distinct) / n if n else 0.0,
        low_distinct_poems=sum(d < LOW_DISTINCT for d in own_distinct) / n if n else 0.0,
        junk_poems=junk / n if n else 0.0,
        stutter_poems=stutter / n if n else 0.0,
        copied_lines=copied / line_total if line_total else 0.0,
        copied_span_poems=span_hits / n if n and index is not None else 0.0,
        mean_lines=lines_total / n if n else 0.0,
        mean_words=words_total / n if n else 0.0,
        strength=strength,
        judge_fidelity=judge_fidelity,
        judge_labels=judge_labels,
        base_ppl=fluency_ppl(nlls) if nlls is not None else None,
        samples=[text for _, text in poems[:3]],
        form=form,
        form_score=form_counts(poems, form),
        seeds=[case.seed for case, _ in poems],
        hits=verdicts,
        judge_hits=[label == target for label in judged] if judged is not None else None,
        poems=[text for _, text in poems] if form is not None else [],
    )


def form_counts(
    poems: Sequence[tuple[EvalCase, str]], form: str | None
) -> dict[str, float | int | None] | None:
    """The poems' rhyme, syllable and meter counts against the named form, or None for none."""
    if form is None:
        return None
    from trainer.common.form import parse_form
    from trainer.evaluation.formscore import poem_lines
    from trainer.evaluation.formscore import score_poems as score_form

    # A typed first line is the writer's: the form's syllables and meter are scored after it.
    given = [1 if case.first_line.strip() else 0 for case, _ in poems]
    lines = (poem_lines(text) for _, text in poems)
    return score_form(lines, parse_form(form), given=given).to_dict()


def written_part(text: str, first_line: str) -> str:
    """The part of a poem the model wrote: everything after the given first line."""
    if first_line and text.lstrip().startswith(first_line.strip()):
        return text.lstrip()[len(first_line.strip()) :].lstrip("\n")
    return text


# --- The default-strength rule -----------------------------------------------------------------
# Guidance raises both judges' scores long after the verse has turned to word salad, so the rule
# maximises fidelity only among strengths whose poems still read as poems.
MIN_POEM_DISTINCT_1 = 0.65
MAX_LOW_DISTINCT = 0.10
MAX_JUNK = 0.02
MAX_STUTTER = 0.03
MAX_COPIED_LINES = 0.02
MAX_PPL_RATIO = 1.5
RULE = (
    "the strength with the highest mean {score} fidelity over the emotion models, among the"
    f" strengths where: mean within-poem distinct-1 >= {MIN_POEM_DISTINCT_1:g} with at most"
    f" {MAX_LOW_DISTINCT:.0%} of poems below {LOW_DISTINCT:g}; at most {MAX_JUNK:.0%} of poems"
    f" with a junk token; at most {MAX_STUTTER:.0%} of poems that stutter (a word right after"
    f" itself, or a content word {STUTTER_REPEATS}+ times); at most {MAX_COPIED_LINES:.0%} of lines"
    " copied from the training set;"
    f" the raw base's perplexity at most {MAX_PPL_RATIO:g}x that of plain sampling (strength 0)."
    " Ties go to the lower strength."
)


@dataclass
class StrengthSummary:
    """One strength of a sweep: the emotion models' figures, averaged over the emotions."""

    strength: float
    emotions: list[str]
    fidelity: float  # EmoLex
    judge_fidelity: float | None  # None unless every emotion has a judge score
    poem_distinct_1: float
    low_distinct_poems: float
    junk_poems: float
    stutter_poems: float
    copied_lines: float
    base_ppl: float | None
    ppl_ratio: float | None = None  # base_ppl over that of strength 0
    failures: list[str] = field(default_factory=list)  # the rule's limits this strength breaks

    @property
    def passes(self) -> bool:
        """Whether this strength keeps every limit of the rule."""
        return not self.failures


@dataclass
class StrengthChoice:
    """The strength the rule picks (None when none qualifies), with the sweep behind it."""

    strength: float | None
    score: str  # "semantic judge" or "EmoLex": what the rule ranked by
    rule: str
    sweep: list[StrengthSummary]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON report."""
        sweep = [{**asdict(s), "passes": s.passes} for s in self.sweep]
        return {**asdict(self), "sweep": sweep}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def free_verse(results: Iterable[ModelEval]) -> list[ModelEval]:
    """The rows of free verse (no form, or `free`): the ones the strength rule compares."""
    return [r for r in results if r.form in (None, "free")]


def summarise_sweep(results: Iterable[ModelEval]) -> list[StrengthSummary]:
    """Per strength, the means over the emotion models (rows with a strength and an emotion) of
    free verse; formed rows are left to trainer.evaluation.formcost."""
    by_strength: dict[float, list[ModelEval]] = {}
    for r in free_verse(results):
        if r.strength is not None and r.target in EMOTIONS:
            by_strength.setdefault(r.strength, []).append(r)
    summaries = []
    for strength, rows in sorted(by_strength.items()):
        judged = [r.judge_fidelity for r in rows if r.judge_fidelity is not None]
        ppls = [r.base_ppl for r in rows if r.base_ppl is not None]
        summaries.append(
            StrengthSummary(
                strength=strength,
                emotions=[r.target for r in rows],
                fidelity=_mean([r.fidelity for r in rows]),
                judge_fidelity=_mean(judged) if len(judged) == len(rows) else None,
                poem_distinct_1=_mean([r.poem_distinct_1 for r in rows]),
                low_distinct_poems=_mean([r.low_distinct_poems for r in rows]),
                junk_poems=_mean([r.junk_poems for r in rows]),
                stutter_poems=_mean([r.stutter_poems for r in rows]),
                copied_lines=_mean([r.copied_lines for r in rows]),
                base_ppl=_mean(ppls) if len(ppls) == len(rows) else None,
            )
        )
    return summaries


def _failures(summary: StrengthSummary) -> list[str]:
    """The rule's limits that `summary` breaks, each as a short phrase."""
    checks = [
        (
            summary.poem_distinct_1 >= MIN_POEM_DISTINCT_1,
            f"distinct-1 {summary.poem_distinct_1:.2f} < {MIN_POEM_DISTINCT_1:g}",
        ),
        (
            summary.low_distinct_poems <= MAX_LOW_DISTINCT,
            f"{summary.low_distinct_poems:.0%} of poems below {LOW_DISTINCT:g}",
        ),
        (summary.junk_poems <= MAX_JUNK, f"junk in {summary.junk_poems:.0%} of poems"),
        (
            summary.stutter_poems <= MAX_STUTTER,
            f"{summary.stutter_poems:.0%} of poems stutter",
        ),
        (summary.copied_lines <= MAX_COPIED_LINES, f"{summary.copied_lines:.1%} lines copied"),
    ]
    if summary.ppl_ratio is not None and summary.ppl_ratio > MAX_PPL_RATIO:
        checks.append((False, f"base ppl {summary.ppl_ratio:.2f}x plain sampling"))
    return [message for ok, message in checks if not ok]


def pick_strength(results: Iterable[ModelEval]) -> StrengthChoice:
    """Apply the default-strength rule (RULE) to a sweep's results; a pure function.

    Ranks by the semantic judge where every strength has its score, else by EmoLex and says so.
    """
    sweep = summarise_sweep(results)
    notes: list[str] = []
    use_judge = bool(sweep) and all(s.judge_fidelity is not None for s in sweep)
    if sweep and not use_judge:
        notes.append("no semantic judge scores: the rule ranked by EmoLex fidelity instead")
    plain = next((s for s in sweep if s.strength == 0), None)
    if plain is None or plain.base_ppl is None:
        if sweep:
            notes.append("no base perplexity at strength 0: the perplexity limit was not checked")
    else:
        for s in sweep:
            if s.base_ppl is not None:
                s.ppl_ratio = s.base_ppl / plain.base_ppl
    for s in sweep:
        s.failures = _failures(s)

    def score(s: StrengthSummary) -> float:
        value = s.judge_fidelity if use_judge else s.fidelity
        return value if value is not None else 0.0

    passing = [s for s in sweep if s.passes]
    # Highest score first; among equal scores the lower strength, which disturbs the model less.
    best = max(passing, key=lambda s: (score(s), -s.strength), default=None)
    if not sweep:
        notes.append("no emotion model was swept, so there is no strength to pick")
    elif best is None:
        notes.append("no strength keeps every limit")
    label = "semantic judge" if use_judge else "EmoLex"
    return StrengthChoice(
        strength=best.strength if best else None,
        score=label,
        rule=RULE.format(score=label),
        sweep=sweep,
        notes=notes,
    )


def per_emotion_picks(results: Iterable[ModelEval]) -> dict[str, float | None]:
    """The strength the same rule picks for each emotion alone (None where none qualifies)."""
    rows = free_verse(results)
    picks: dict[str, float | None] = {}
    for emotion in EMOTIONS:
        mine = [r for r in rows if r.target == emotion and r.strength is not None]
        if mine:
            picks[emotion] = pick_strength(mine).strength
    return picks


# --- Reports -----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def strength_label(r: ModelEval) -> str:
    """A row's strength as shown: blank where none applies, and what was applied if it differs."""
    if r.strength is None:
        return "—"
    if r.strength_applied is not None and abs(r.strength_applied - r.strength) > 1e-9:
        return f"{r.strength:g} (applied {r.strength_applied:.2g})"
    return f"{r.strength:g}"


def _bar(value: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, value)) * width)
    return "█" * filled + "·" * (width - filled)


def _sweep_markdown(choice: StrengthChoice, results: list[ModelEval]) -> list[str]:
    """The strength sweep: means per strength, the rule and its pick, then each emotion."""
    lines = [
        "## Strength sweep",
        "",
        "Means over the emotion models at each strength. Distinct-1 is within each poem's written"
        " part; base ppl is the fluency figure above; the ratio compares it with strength 0.",
        "",
        "| strength | EmoLex | judge | distinct-1 | below 0.5 | junk | stutter | copied lines"
        " | base ppl | ppl vs 0 | keeps the limits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in choice.sweep:
        verdict = "yes" if s.passes else "no: " + "; ".join(s.failures)
        ratio = "—" if s.ppl_ratio is None else f"{s.ppl_ratio:.2f}x"
        lines.append(
            f"| {s.strength:g} | {_pct(s.fidelity)} | {_pct(s.judge_fidelity)}"
            f" | {s.poem_distinct_1:.2f} | {_pct(s.low_distinct_poems)} | {_pct(s.junk_poems)}"
            f" | {_pct(s.stutter_poems)} | {100 * s.copied_lines:.1f}% | {_num(s.base_ppl)}"
            f" | {ratio} | {verdict} |"
        )
    picked = "none" if choice.strength is None else f"{choice.strength:g}"
    lines += ["", f"**Rule.** Pick {choice.rule}", "", f"**Picked strength: {picked}**"]
    lines += [f"- {note}" for note in choice.notes]
    picks = per_emotion_picks(results)
    if len(picks) > 1:
        shown = ", ".join(
            f"{emotion} {'none' if pick is None else f'{pick:g}'}"
            for emotion, pick in picks.items()
        )
        lines += ["", f"The same rule for each emotion alone picks: {shown}."]
    strengths = [s.strength for s in choice.sweep]
    cells = {(r.target, r.strength): r for r in free_verse(results) if r.strength is not None}
    emotions = [e for e in EMOTIONS if any((e, s) in cells for s in strengths)]
    if emotions:
        lines += [
            "",
            "### Per emotion (EmoLex / judge / distinct-1 / stutter)",
            "",
            "| emotion | " + " | ".join(f"strength {s:g}" for s in strengths) + " |",
            "|---|" + "---|" * len(strengths),
        ]
        for emotion in emotions:
            row = []
            for strength in strengths:
                r = cells.get((emotion, strength))
                row.append(
                    "—"
                    if r is None
                    else f"{_pct(r.fidelity)} / {_pct(r.judge_fidelity)}"
                    f" / {r.poem_distinct_1:.2f} / {_pct(r.stutter_poems)}"
                )
            lines.append(f"| {emotion} | " + " | ".join(row) + " |")
    return lines


def render_markdown(
    results: list[ModelEval],
    command: str,
    header: dict[str, Any],
    choice: StrengthChoice | None = None,
    notes: Sequence[str] = (),
    plot: str | None = None,
) -> str:
    """The Markdown report: the table, the strength sweep and its pick, a chart, fidelity bars.

    `plot` is the chart's file name beside the report, linked when given.
    """
    lines = [
        "# poetstudio evaluation",
        "",
        f"Produced by `{command}`.",
        "",
        *(f"- {key}: {value}" for key, value in header.items()),
        *(f"- note: {note}" for note in notes),
        "",
        "EmoLex: share of generated poems whose EmoLex label is the target emotion (mixed counts"
        " as a miss; for neutral, neutral or mixed counts as a hit). Judge: share the semantic"
        " judge (a sentence encoder, independent of EmoLex) ranks the target first of the 8"
        " emotions. Distinct-1 (all) pools every poem's words; distinct-1 (poem) is the mean"
        f" within each poem, and below {LOW_DISTINCT:g} is the share of poems under"
        f" {LOW_DISTINCT:g}. Junk: share of poems with markup, a URL piece, a digit inside a word"
        " or a broken character. Stutter: share of poems where a word directly follows itself"
        f" or one content word (outside the Snowball English stop list) comes {STUTTER_REPEATS}+"
        " times. Copied lines: share of generated lines found verbatim in the"
        f" training set; copied spans: share of poems with any {SPAN_TOKENS}-word span from it."
        " Base ppl: fluency, the raw base model's perplexity of the written parts (exp of the"
        " mean over poems of each poem's mean token loss). All but the first line of a poem is"
        " its written part.",
        "",
        "| model | target | strength | N | EmoLex | excl. mixed | judge | distinct-1 (all)"
        " | distinct-1 (poem) | below 0.5 | junk | stutter | distinct-2 | copied lines"
        " | copied spans | lines | words | base ppl | val ppl |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.target} | {strength_label(r)} | {r.n} | {_pct(r.fidelity)}"
            f" | {_pct(r.fidelity_excl_mixed)} | {_pct(r.judge_fidelity)} | {r.distinct_1:.2f}"
            f" | {r.poem_distinct_1:.2f} | {_pct(r.low_distinct_poems)} | {_pct(r.junk_poems)}"
            f" | {_pct(r.stutter_poems)} | {r.distinct_2:.2f} | {100 * r.copied_lines:.1f}%"
            f" | {_pct(r.copied_span_poems)}"
            f" | {r.mean_lines:.1f} | {r.mean_words:.1f} | {_num(r.base_ppl)}"
            f" | {_num(r.val_ppl)} |"
        )
    if choice is not None and choice.sweep:
        lines += ["", *_sweep_markdown(choice, results)]
    from trainer.evaluation.formcost import form_markdown

    form_section = form_markdown(results)
    if form_section:
        lines += ["", *form_section]
    if plot:
        lines += ["", f"![Fidelity and distinct-1 against strength]({plot})"]
    names = [r.name if r.strength is None else f"{r.name} s={r.strength:g}" for r in results]
    width = max((len(name) for name in names), default=0)
    lines += ["", "## Fidelity per model (EmoLex)", "", "```"]
    lines += [
        f"{name:<{width}}  {_bar(r.fidelity)} {_pct(r.fidelity):>4}"
        for name, r in zip(names, results, strict=True)
    ]
    lines += ["```", ""]
    return "\n".join(lines)
