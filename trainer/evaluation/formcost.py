"""What form costs: each form's rhyme, syllable and meter accuracy beside its emotion fidelity,
diversity, degeneration and fluency, and a paired bootstrap of its fidelity against free verse.

The rows come from trainer.evaluation.metrics (`ModelEval`, one per model, strength and form).
Free verse and a form are written from the same prompts and seeds, so each seed gives a pair of
poems per emotion; resampling seeds (all of a seed's emotions together) gives an interval for the
difference in pooled fidelity that the seeds' own variation cannot explain away.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from trainer.common.emotions import EMOTIONS
from trainer.evaluation.formscore import FormScore, pool
from trainer.evaluation.metrics import ModelEval

FREE = "free"
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 1234


@dataclass(frozen=True)
class Interval:
    """A difference of means (formed minus free) and its 95% bootstrap interval."""

    difference: float
    low: float
    high: float
    pairs: int  # the (emotion, seed) pairs compared


def paired_bootstrap(
    free: dict[tuple[str, int], bool],
    formed: dict[tuple[str, int], bool],
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> Interval | None:
    """Formed minus free fidelity over the (emotion, seed) keys both have, with a 95% interval
    from resampling the seeds with replacement (a seed carries all its emotions' pairs).

    None when no key is shared. Deterministic for a given `seed`.
    """
    keys = sorted(set(free) & set(formed))
    if not keys:
        return None
    by_seed: dict[int, list[float]] = {}
    for emotion, poem_seed in keys:
        by_seed.setdefault(poem_seed, []).append(
            float(formed[emotion, poem_seed]) - float(free[emotion, poem_seed])
        )
    seeds = sorted(by_seed)
    sums = [sum(by_seed[s]) for s in seeds]
    counts = [len(by_seed[s]) for s in seeds]
    difference = sum(sums) / sum(counts)
    draw = random.Random(seed)
    means = []
    for _ in range(reps):
        picks = [draw.randrange(len(seeds)) for _ in seeds]
        means.append(sum(sums[i] for i in picks) / sum(counts[i] for i in picks))
    means.sort()
    low = means[int(0.025 * (reps - 1))]
    high = means[int(round(0.975 * (reps - 1)))]
    return Interval(difference, low, high, len(keys))


def _verdicts(row: ModelEval, judge: bool) -> dict[tuple[str, int], bool] | None:
    hits = row.judge_hits if judge else row.hits
    if hits is None:
        return None
    return {(row.target, seed): hit for seed, hit in zip(row.seeds, hits, strict=True)}


@dataclass
class FormSummary:
    """One form at one strength, pooled over the emotion models."""

    form: str
    strength: float | None
    emotions: list[str]
    score: FormScore
    fidelity: float
    judge_fidelity: float | None
    poem_distinct_1: float
    junk_poems: float
    stutter_poems: float
    copied_lines: float
    base_ppl: float | None
    ppl_ratio: float | None = None  # base_ppl over free verse's at the same strength
    emolex_vs_free: Interval | None = None
    judge_vs_free: Interval | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON report."""
        out = asdict(self)
        out["score"] = self.score.to_dict()
        return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _merged(rows: Sequence[ModelEval], judge: bool) -> dict[tuple[str, int], bool] | None:
    merged: dict[tuple[str, int], bool] = {}
    for row in rows:
        verdicts = _verdicts(row, judge)
        if verdicts is None:
            return None
        merged.update(verdicts)
    return merged


def summarise_forms(results: Iterable[ModelEval]) -> list[FormSummary]:
    """Per (form, strength), the emotion models' figures pooled, with the cost against free verse
    at the same strength where free verse was written too."""
    groups: dict[tuple[str, float | None], list[ModelEval]] = {}
    for r in results:
        if r.form is not None and r.target in EMOTIONS:
            groups.setdefault((r.form, r.strength), []).append(r)
    summaries = []
    for (form, strength), rows in groups.items():
        judged = [r.judge_fidelity for r in rows if r.judge_fidelity is not None]
        ppls = [r.base_ppl for r in rows if r.base_ppl is not None]
        scores = [FormScore(**_counts(r.form_score)) for r in rows if r.form_score is not None]
        summaries.append(
            FormSummary(
                form=form,
                strength=strength,
                emotions=[r.target for r in rows],
                score=pool(scores),
                fidelity=_mean([r.fidelity for r in rows]),
                judge_fidelity=_mean(judged) if len(judged) == len(rows) else None,
                poem_distinct_1=_mean([r.poem_distinct_1 for r in rows]),
                junk_poems=_mean([r.junk_poems for r in rows]),
                stutter_poems=_mean([r.stutter_poems for r in rows]),
                copied_lines=_mean([r.copied_lines for r in rows]),
                base_ppl=_mean(ppls) if len(ppls) == len(rows) else None,
            )
        )
    for summary in summaries:
        free_rows = groups.get((FREE, summary.strength))
        rows = groups[summary.form, summary.strength]
        free_summary = next(
            (s for s in summaries if s.form == FREE and s.strength == summary.strength), None
        )
        if free_summary and free_summary.base_ppl and summary.base_ppl is not None:
            summary.ppl_ratio = summary.base_ppl / free_summary.base_ppl
        if summary.form == FREE or not free_rows:
            continue
        for judge in (False, True):
            free, formed = _merged(free_rows, judge), _merged(rows, judge)
            interval = paired_bootstrap(free, formed) if free and formed else None
            if judge:
                summary.judge_vs_free = interval
            else:
                summary.emolex_vs_free = interval
    return summaries


def _counts(score: dict[str, float | int | None]) -> dict[str, int]:
    from dataclasses import fields

    return {f.name: int(score[f.name] or 0) for f in fields(FormScore)}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return (
        f"{100 * interval.difference:+.0f} [{100 * interval.low:+.0f}, {100 * interval.high:+.0f}]"
    )


def _strength(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def form_markdown(results: Sequence[ModelEval]) -> list[str]:
    """The report's Form section: pooled per form, then each emotion; empty without forms."""
    summaries = summarise_forms(results)
    if not summaries:
        return []
    lines = [
        "## Form",
        "",
        "Pooled over the emotion models. Rhyme: required pairs whose last words rhyme by the CMU"
        " dictionary (pairs with a word outside it counted apart, as OOV). Syllables: lines with"
        " exactly their count (a word with several pronunciations meets it if any does), and"
        " within one; poems exact: every line exact (haiku 5-7-5). Meter: lines whose stresses"
        " fit the meter (monosyllables free, secondary stress either). Fidelity vs free: the"
        " difference in points from free verse at the same strength, written from the same"
        f" seeds, with a paired bootstrap 95% interval over seeds ({BOOTSTRAP_REPS} draws).",
        "",
        "| form | strength | poems | rhyme | OOV rhyme | syllables exact | within 1 | poems exact"
        " | meter | EmoLex | judge | EmoLex vs free | judge vs free | distinct-1 | junk | stutter"
        " | copied lines | base ppl | ppl vs free |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        score = s.score
        oov = f"{_pct(score.oov_rhyme_accuracy)} of {score.oov_pairs}" if score.oov_pairs else "—"
        lines.append(
            f"| {s.form} | {_strength(s.strength)} | {score.poems} | {_pct(score.rhyme_accuracy)}"
            f" | {oov} | {_pct(score.syllable_accuracy)} | {_pct(score.syllable_near_accuracy)}"
            f" | {_pct(score.poems_exact)} | {_pct(score.meter_accuracy)} | {_pct(s.fidelity)}"
            f" | {_pct(s.judge_fidelity)} | {_interval(s.emolex_vs_free)}"
            f" | {_interval(s.judge_vs_free)} | {s.poem_distinct_1:.2f} | {_pct(s.junk_poems)}"
            f" | {_pct(s.stutter_poems)} | {100 * s.copied_lines:.1f}%"
            f" | {'—' if s.base_ppl is None else f'{s.base_ppl:.1f}'}"
            f" | {'—' if s.ppl_ratio is None else f'{s.ppl_ratio:.2f}x'} |"
        )
    lines += [
        "",
        "### Per emotion (rhyme / syllables exact / meter / EmoLex / judge)",
        "",
        "| emotion | " + " | ".join(f"{s.form} {_strength(s.strength)}" for s in summaries) + " |",
        "|---|" + "---|" * len(summaries),
    ]
    cells = {(r.target, r.form, r.strength): r for r in results if r.form is not None}
    for emotion in [e for e in EMOTIONS if any(k[0] == e for k in cells)]:
        row = []
        for s in summaries:
            r = cells.get((emotion, s.form, s.strength))
            if r is None or r.form_score is None:
                row.append("—")
                continue
            score = FormScore(**_counts(r.form_score))
            row.append(
                f"{_pct(score.rhyme_accuracy)} / {_pct(score.syllable_accuracy)}"
                f" / {_pct(score.meter_accuracy)} / {_pct(r.fidelity)} / {_pct(r.judge_fidelity)}"
            )
        lines.append(f"| {emotion} | " + " | ".join(row) + " |")
    return lines
