"""`poetstudio eval` without the terminal: sample every model with the studio's own defaults, at
each guidance strength of the sweep, and score the poems with trainer.evaluation.metrics's metrics.

Each emotion model writes N poems from the fixed prompts and seeds at every strength asked for;
neutral and the un-tuned base (the control) do not depend on strength, so they are sampled once.
The semantic judge (the `judge` extra) labels every poem; the raw base scores every poem's
written part for fluency. Validation perplexity comes from the same packed, seeded validation
blocks that training measures on, once per model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.generation.poet import Poet
from studio.core.generation.settings import DEFAULT_STRENGTH, SamplingParams
from studio.core.loader import LoadedModel
from studio.core.registry import ModelInfo, no_models_hint
from trainer.common.emotions import EMOTIONS, MODEL_EMOTIONS, NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.perplexity import perplexity
from trainer.evaluation.formcost import summarise_forms
from trainer.evaluation.metrics import (
    EvalCase,
    ModelEval,
    StrengthChoice,
    TrainingIndex,
    eval_cases,
    free_verse,
    per_emotion_picks,
    pick_strength,
    render_markdown,
    score_poems,
    written_part,
)

if TYPE_CHECKING:
    from trainer.training.packing import Packed

BASE_NAME = "base (control)"
FLUENCY = "raw base perplexity of each poem's written part; exp(mean of per-poem mean token loss)"


@dataclass(frozen=True)
class EvalProgress:
    """Where an evaluation stands: `done` of `total` steps of its current (model, strength) run,
    and the poems written so far of all the runs will write."""

    what: str
    done: int
    total: int
    run: int  # the current run, from 1 (0 while loading)
    runs: int  # (model, strength) runs in all, the control included
    poems_done: int
    poems_total: int


Progress = Callable[[EvalProgress], None]
RunDone = Callable[[ModelEval], None]
# One run's semantic-judge labels and raw-base losses, each None where it cannot be measured.
_Extras = tuple[list[str] | None, list[float | None] | None]


@dataclass
class EvalPlan:
    """What one evaluation run covers."""

    n: int
    dataset: str = "clean"
    emotions: tuple[str, ...] = MODEL_EMOTIONS
    include_base: bool = True
    strengths: tuple[float, ...] = (DEFAULT_STRENGTH,)
    valid_blocks: int = 64
    block_size: int = 128
    max_words: int = 100
    seed: int = 1234  # the validation shuffle seed training uses, so perplexities agree
    stutter_guard: bool = True  # off only to measure what the guard changes
    # Forms to write each model's poems in (trainer.common.form presets); None: the studio's
    # free verse alone, as before forms existed. The control is written in free verse only.
    forms: tuple[str, ...] | None = None
    # How often a formed line the form forced is written again (SamplingParams.line_tries).
    line_tries: int = SamplingParams.line_tries


@dataclass
class EvalReport:
    """The scored runs, the strength the rule picks, and the neutral model's split perplexities."""

    results: list[ModelEval]
    choice: StrengthChoice
    neutral_ppl: dict[str, float] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was left out, and how to get it

    def to_json(self) -> dict[str, Any]:
        """The JSON report; `forms` only where forms were written."""
        forms = [summary.to_json() for summary in summarise_forms(self.results)]
        return {
            "header": self.header,
            "notes": self.notes,
            "results": [result.to_json() for result in self.results],
            "strength_choice": self.choice.to_json(),
            "per_emotion_picks": per_emotion_picks(self.results),
            **({"forms": forms} if forms else {}),
            "neutral_ppl_on_split": self.neutral_ppl,
        }


@dataclass(frozen=True)
class ReportPaths:
    """Where write_reports put the reports; a chart is None when it was skipped."""

    folder: Path
    json: Path
    markdown: Path
    plot: Path | None
    fidelity_plot: Path | None = None

    def files(self) -> list[Path]:
        """Every report written, the charts included."""
        return [p for p in (self.json, self.markdown, self.plot, self.fidelity_plot) if p]


def missing_extras() -> list[str]:
    """One line for each optional part of the report that cannot run, saying how to get it."""
    from studio.core.evalplot import PLOT_HINT, plot_available
    from trainer.evaluation.judge import INSTALL_HINT, model_folder

    notes = []
    if model_folder() is None:
        notes.append(f"no semantic judge: `{INSTALL_HINT}` adds it; reporting EmoLex alone")
    if not plot_available():
        notes.append(f"no strength chart: `{PLOT_HINT}` adds matplotlib")
    return notes


def preflight(home: DataHome, plan: EvalPlan, folder: Path) -> None:
    """Check, before any model loads, what would otherwise fail after all the sampling: the
    dataset that perplexity and copying read, and the folder the reports go to."""
    from trainer.corpus.dataset import load_manifest

    load_manifest(home, plan.dataset)
    check_report_folder(folder)


def check_report_folder(folder: Path) -> None:
    """Refuse a report folder that cannot be created or written, without creating anything."""
    existing = folder.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise PoetstudioError(
            f"cannot write the reports to {folder}: {existing} is a file, not a folder; "
            "give another --out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PoetstudioError(
            f"cannot write the reports to {folder}: {existing} is not writable; give another --out"
        )


def base_model_info(poet: Poet, infos: list[ModelInfo]) -> ModelInfo:
    """A model entry for the raw base that the LoRA models sit on."""
    from trainer.common.bases import resolve_base
    from trainer.training.manifest import ModelManifest

    full = sorted(info.emotion for info in infos if info.method != "lora")
    if full:
        which = f"{', '.join(full)} {'is a full model' if len(full) == 1 else 'are full models'}"
        raise PoetstudioError(
            f"the base control needs every model to be an adapter on one base, and {which};"
            " use --no-base"
        )
    specs = {info.base_spec for info in infos}
    if len(specs) != 1:
        raise PoetstudioError(
            f"the base control needs the models to share one base, and they sit on"
            f" {', '.join(sorted(specs))}; use --no-base"
        )
    spec = specs.pop()
    folder = Path(resolve_base(spec, poet.home))
    return ModelInfo("base", folder, "base", "full", spec, ModelManifest(method="full"))


def _scored_ids(model: LoadedModel, case: EvalCase, text: str) -> tuple[list[int], int] | None:
    """A poem's ids as the raw base reads it (its first line as the prompt, then the written
    part) and where the written part starts; None when nothing was written."""
    from studio.core.generation.text import clean_first_line
    from trainer.common.textformat import prompt_ids

    body = written_part(text, case.first_line)
    target = model.tokenizer.encode(body, add_special_tokens=False)
    if not target:
        return None
    prompt = prompt_ids(model.tokenizer, clean_first_line(case.first_line), model.tokens)
    ids = (prompt + target)[: model.context]
    if len(ids) <= len(prompt):
        return None
    return ids, len(prompt)


# Poems scored per forward: sorted by length, so a batch pads little; 8 rows of 150 tokens hold
# 240 MB of fp32 scores.
LOSS_BATCH = 8


def base_losses(
    poet: Poet, base: ModelInfo, poems: list[tuple[EvalCase, str]]
) -> list[float | None]:
    """Each poem's mean token loss under the raw base, on its written part given its first line."""
    import torch

    loaded = poet.loader.load(base)
    scored = [_scored_ids(loaded, case, text) for case, text in poems]
    losses: list[float | None] = [None] * len(poems)
    items = sorted(
        ((index, *item) for index, item in enumerate(scored) if item is not None),
        key=lambda item: len(item[1]),
    )
    device = loaded.exempt.device
    with poet.loader.lock, torch.inference_mode():
        poet.loader.activate(loaded)
        for start in range(0, len(items), LOSS_BATCH):
            batch = items[start : start + LOSS_BATCH]
            width = max(len(ids) for _, ids, _ in batch)
            # Padding sits after each poem, where its own tokens never attend.
            ids = torch.zeros((len(batch), width), dtype=torch.long, device=device)
            mask = torch.zeros_like(ids)
            for row, (_, poem, _) in enumerate(batch):
                ids[row, : len(poem)] = torch.tensor(poem, device=device)
                mask[row, : len(poem)] = 1
            logits = loaded.module(input_ids=ids, attention_mask=mask).logits[:, :-1]
            token_losses = torch.nn.functional.cross_entropy(
                logits.float().transpose(1, 2), ids[:, 1:], reduction="none"
            )
            for row, (index, poem, prompt) in enumerate(batch):
                losses[index] = float(token_losses[row, prompt - 1 : len(poem) - 1].mean())
    return losses


class _Validation:
    """Models' perplexity on each label's validation blocks, the blocks packed once per label
    and tokenizer (the neutral model and the base are measured on every emotion's)."""

    def __init__(self, poet: Poet, home: DataHome, plan: EvalPlan) -> None:
        self.poet = poet
        self.home = home
        self.plan = plan
        self._blocks: dict[tuple[Any, ...], Packed] = {}

    def ppl(self, info: ModelInfo, label: str) -> float:
        """Perplexity of `info`'s model on `label`'s validation blocks."""
        from trainer.training.packing import DataSpec, valid_blocks
        from trainer.training.valloss import validation_loss

        plan = self.plan
        spec = DataSpec(
            dataset=plan.dataset,
            label=label,
            block_size=plan.block_size,
            max_words=plan.max_words,
            seed=plan.seed,
            eval_blocks=plan.valid_blocks,
        )
        poet = self.poet
        loaded = poet.loader.load(info)
        with poet.loader.lock:
            poet.loader.activate(loaded)
            # One tokenizer folder gives the same ids whichever model loaded it.
            tokenizer = loaded.tokenizer
            key = (label, tokenizer.name_or_path, len(tokenizer), loaded.tokens)
            if key not in self._blocks:
                self._blocks[key] = valid_blocks(self.home, loaded.tokenizer, spec, loaded.tokens)
            loss = validation_loss(loaded.module, self._blocks[key], 8, poet.device, None)
        return perplexity(loss)


class _TrainingIndexes:
    """Each label's copy index, its training poems read and hashed once per evaluation (every
    model's index holds the neutral poems too)."""

    def __init__(self, home: DataHome, plan: EvalPlan) -> None:
        self.home = home
        self.plan = plan
        self._built: dict[str, TrainingIndex] = {}

    def of(self, labels: list[str]) -> TrainingIndex:
        """One index over the training poems of `labels`."""
        from trainer.training.packing import label_texts

        for label in labels:
            if label not in self._built:
                texts = label_texts(
                    self.home, self.plan.dataset, label, "train", self.plan.max_words
                )
                self._built[label] = TrainingIndex(texts)
        return TrainingIndex.union([self._built[label] for label in labels])


# One run: a model, the strength it is guided at, and the form it writes (None: free verse).
Run = tuple[ModelInfo, float, str | None]


def _runs(chosen: list[ModelInfo], plan: EvalPlan) -> list[Run]:
    """Every (model, strength, form) run; neutral runs once per form at strength 0, as guidance
    skips it."""
    strengths = sorted(set(plan.strengths))
    forms: list[str | None] = list(dict.fromkeys(plan.forms)) if plan.forms else [None]
    runs: list[Run] = []
    for info in chosen:
        for form in forms:
            for strength in [0.0] if info.emotion == NEUTRAL else strengths:
                runs.append((info, strength, form))
    return runs


def _write_all(
    poet: Poet,
    runs: list[Run],
    base: ModelInfo | None,
    plan: EvalPlan,
    on_poem: Callable[[int, int], None],
) -> tuple[dict[int, list[tuple[EvalCase, str]]], dict[int, float]]:
    """Every run's poems, written in batches, by run number (the control's is the last).

    Returns the poems of each run and the mean strength the core applied in it (0 where
    guidance fell back). Poems with one first line share batches across models and strengths.
    """
    from studio.core.batch import PoemRequest, write_poems

    cases = eval_cases(plan.n)
    keys: list[int] = []
    requests: list[PoemRequest] = []
    for run, (info, strength, form) in enumerate(runs, start=1):
        for case in cases:
            params = SamplingParams(
                seed=case.seed, strength=strength, stutter_guard=plan.stutter_guard
            )
            if form is not None:
                params = dataclasses.replace(params, form=form, line_tries=plan.line_tries)
            requests.append(PoemRequest(info.emotion, case.first_line, params))
            keys.append(run)
    if base is not None:
        for case in cases:
            params = SamplingParams(seed=case.seed, stutter_guard=plan.stutter_guard)
            requests.append(PoemRequest(base.emotion, case.first_line, params, info=base))
            keys.append(len(runs) + 1)
    written = write_poems(poet, requests, on_poem=on_poem)
    poems: dict[int, list[tuple[EvalCase, str]]] = {}
    strengths: dict[int, list[float]] = {}
    for index, (run, (text, stats)) in enumerate(zip(keys, written, strict=True)):
        poems.setdefault(run, []).append((cases[index % len(cases)], text.strip()))
        strengths.setdefault(run, []).append(stats.strength)
    return poems, {run: sum(values) / len(values) for run, values in strengths.items()}


def run_eval(
    home: DataHome,
    poet: Poet,
    plan: EvalPlan,
    progress: Progress | None = None,
    on_run: RunDone | None = None,
) -> EvalReport:
    """Evaluate every model in `plan.emotions` that exists at each strength, then the control.

    `progress` hears about every poem; `on_run` gets each emotion model's (model, strength)
    result as soon as it is scored (the control follows at the end).
    """
    listener = progress or (lambda step: None)
    models = poet.refresh()
    chosen = [models[emotion] for emotion in plan.emotions if emotion in models]
    if not chosen:
        raise PoetstudioError(no_models_hint())
    notes = missing_extras()
    runs = _runs(chosen, plan)
    total_runs = len(runs) + plan.include_base
    written = 0  # poems, over all runs

    def report(what: str, done: int, total: int, run: int) -> None:
        listener(EvalProgress(what, done, total, run, total_runs, written, total_runs * plan.n))

    # The raw base is the control and the fluency judge; --no-base leaves it unloaded.
    base = base_model_info(poet, chosen) if plan.include_base else None
    if base is None:
        notes.append("no fluency figure: --no-base leaves the raw base out")
    from trainer.evaluation.judge import JUDGE_NAME, load_judge

    report("loading the semantic judge", 0, 1, 0)
    judge = load_judge(poet.device)

    def poem_written(done: int, total: int) -> None:
        nonlocal written
        written = done
        report(f"writing {total} poems, in batches", done, total, 0)

    control = base if plan.include_base else None
    poems, applied = _write_all(poet, runs, control, plan, poem_written)

    def extras(what: str, run: int, written: list[tuple[EvalCase, str]]) -> _Extras:
        """The judge's labels and the base's losses for one run's poems."""
        report(f"{what}: judging and fluency", plan.n, plan.n, run)
        judged = judge.classify([text for _, text in written]) if judge is not None else None
        return judged, base_losses(poet, base, written) if base is not None else None

    results: list[ModelEval] = []
    indexes: dict[str, TrainingIndex] = {}
    training = _TrainingIndexes(home, plan)
    validation = _Validation(poet, home, plan)
    val_ppl: dict[str, float] = {}
    for run, (info, strength, form) in enumerate(runs, start=1):
        name = f"{info.emotion} ({info.source})"
        what = name if info.emotion == NEUTRAL else f"{name}, strength {strength:g}"
        if form is not None:
            name = f"{name}, {form}"
            what = f"{what}, {form}"
        if info.emotion not in indexes:
            # A model has seen its own label's poems and, through its parent, the neutral ones.
            labels = sorted({info.emotion, NEUTRAL})
            indexes[info.emotion] = training.of(labels)
            report(f"{name}: validation perplexity", 0, 1, run)
            val_ppl[info.emotion] = validation.ppl(info, info.emotion)
        # Neutral is sampled plainly whatever the sweep says, so its row carries no strength.
        shown = None if info.emotion == NEUTRAL else strength
        judged, nlls = extras(what, run, poems[run])
        result = score_poems(
            name, info.emotion, poems[run], indexes[info.emotion], judged, nlls, shown, form
        )
        result.strength_applied = applied[run] if shown is not None else None
        result.val_ppl = val_ppl[info.emotion]
        result.val_loss = math.log(result.val_ppl)
        results.append(result)
        if on_run is not None:
            on_run(result)
    neutral_ppl: dict[str, float] = {}
    if NEUTRAL in models:
        for emotion in EMOTIONS:
            if emotion in models and emotion in plan.emotions:
                report(f"neutral ppl on {emotion}", 0, 1, len(runs))
                neutral_ppl[emotion] = validation.ppl(models[NEUTRAL], emotion)
    if plan.include_base and base is not None:
        control_run = total_runs
        judged, nlls = extras(BASE_NAME, control_run, poems[control_run])
        for info in chosen:
            scored = score_poems(BASE_NAME, info.emotion, poems[control_run], None, judged, nlls)
            scored.val_ppl = validation.ppl(base, info.emotion)
            scored.val_loss = math.log(scored.val_ppl)
            results.append(scored)
    header = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "poems per model": plan.n,
        "strengths": sorted(set(plan.strengths)),
        "dataset": plan.dataset,
        "device": poet.device,
        # Strength is the sweep's, above; the other settings are the studio's defaults.
        "sampling": {
            k: v
            for k, v in SamplingParams(stutter_guard=plan.stutter_guard, line_tries=plan.line_tries)
            .to_dict()
            .items()
            if k != "strength"
        },
        "judge": None if judge is None else JUDGE_NAME,
        "fluency": FLUENCY if base is not None else None,
        "validation": f"{plan.valid_blocks} blocks of {plan.block_size} tokens, seed {plan.seed}",
    }
    if plan.forms:
        header["forms"] = list(dict.fromkeys(plan.forms))
    return EvalReport(results, pick_strength(free_verse(results)), neutral_ppl, header, notes)


def new_report_folder(out: Path) -> Path:
    """A fresh folder name in `out` for one evaluation's reports: `eval-<date>-<time>`."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out / f"eval-{stamp}"
    count = 1
    while folder.exists():
        count += 1
        folder = out / f"eval-{stamp}-{count}"
    return folder


def shipped_strength(report: EvalReport) -> float | None:
    """The strength the charts show: the studio's default where it was swept, else the pick."""
    swept = {s.strength for s in report.choice.sweep}
    return DEFAULT_STRENGTH if DEFAULT_STRENGTH in swept else report.choice.strength


def write_reports(report: EvalReport, folder: Path, command: str) -> ReportPaths:
    """Write the reports into `folder` as one unit: `eval.json`, `eval.md` and the charts
    `eval-strength.png` and `eval-fidelity.png` are staged, then the folder is swapped in whole,
    so an interruption leaves all of them or none."""
    from trainer.common.atomic import staged_dir

    names = ("eval.json", "eval.md", "eval-strength.png", "eval-fidelity.png")
    with staged_dir(folder) as staged:
        written = _write_into(report, staged, command, names)
    json_path, md_path, plot_path, fidelity_path = (
        folder / name if name in written else None for name in names
    )
    assert json_path is not None and md_path is not None
    return ReportPaths(folder, json_path, md_path, plot_path, fidelity_path)


def _write_into(
    report: EvalReport, folder: Path, command: str, names: tuple[str, str, str, str]
) -> set[str]:
    """Write the reports into a staging folder; returns the names of the files written."""
    from studio.core.evalplot import plot_available, write_fidelity_plot, write_plot
    from trainer.common.atomic import atomic_write_json, atomic_write_text

    json_path, md_path, plot_path, fidelity_path = (folder / name for name in names)
    plot: str | None = None
    fidelity: str | None = None
    if (
        report.choice.sweep
        and plot_available()
        and write_plot(free_verse(report.results), report.choice, plot_path)
    ):
        plot = plot_path.name
    if plot_available():
        shipped = shipped_strength(report)
        if write_fidelity_plot(free_verse(report.results), shipped, BASE_NAME, fidelity_path):
            fidelity = fidelity_path.name
    atomic_write_json(json_path, {"command": command, **report.to_json(), "plot": plot})
    markdown = render_markdown(
        report.results, command, report.header, report.choice, report.notes, plot
    )
    if report.neutral_ppl:
        markdown += "\n## Neutral model's perplexity on each emotion's validation split\n\n"
        markdown += "| split | neutral ppl | emotion model ppl |\n|---|---|---|\n"
        own = {r.target: r.val_ppl for r in report.results if r.name != BASE_NAME}
        for emotion, ppl in report.neutral_ppl.items():
            mine = own.get(emotion)
            markdown += f"| {emotion} | {ppl:.1f} | {mine:.1f} |\n" if mine else ""
    if fidelity:
        markdown += "\n## Fidelity per emotion against the base control\n\n"
        markdown += f"![Fidelity per emotion against the base control]({fidelity})\n"
    atomic_write_text(md_path, markdown)
    return {name for name in (json_path.name, md_path.name, plot, fidelity) if name}
