"""`poetstudio eval` without the terminal: sample every model with the studio's own defaults and
score the poems with trainer.evaluate's metrics.

Each model writes N poems from the fixed prompts and seeds, with default sampling and no steering.
The un-tuned base is sampled the same way, as the control. Validation perplexity comes from the
same packed, seeded validation blocks that training measures on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.generate import Poet, SamplingParams
from studio.registry import ModelInfo, no_models_hint
from trainer.emotions import EMOTIONS, MODEL_EMOTIONS, NEUTRAL
from trainer.errors import PoetstudioError
from trainer.evaluate import (
    EvalCase,
    ModelEval,
    TrainingIndex,
    generate_cases,
    render_markdown,
    score_poems,
)
from trainer.home import DataHome

Progress = Callable[[str, int, int], None]
BASE_NAME = "base (control)"


@dataclass
class EvalPlan:
    """What one evaluation run covers."""

    n: int
    dataset: str = "clean"
    emotions: tuple[str, ...] = MODEL_EMOTIONS
    include_base: bool = True
    valid_blocks: int = 64
    block_size: int = 128
    max_words: int = 100
    seed: int = 1234  # the validation shuffle seed training uses, so perplexities agree


@dataclass
class EvalReport:
    """The scored models, plus the neutral model's perplexity on each emotion's split."""

    results: list[ModelEval]
    neutral_ppl: dict[str, float] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON report."""
        return {
            "header": self.header,
            "results": [result.to_json() for result in self.results],
            "neutral_ppl_on_split": self.neutral_ppl,
        }


def _base_info(poet: Poet, infos: list[ModelInfo]) -> ModelInfo:
    """A model entry for the raw base that the LoRA models sit on."""
    from trainer.bases import resolve_base

    specs = {info.base_spec for info in infos if info.method == "lora"}
    if len(specs) != 1:
        raise PoetstudioError("the control needs the LoRA models to share one base; use --no-base")
    spec = specs.pop()
    folder = Path(resolve_base(spec, poet.home))
    return ModelInfo("base", folder, "base", "full", spec, {})


def _poem(poet: Poet, info: ModelInfo, case: EvalCase) -> str:
    params = SamplingParams(seed=case.seed)
    return "".join(poet.stream_model(info, case.first_line, params)).strip()


def _valid_ppl(poet: Poet, info: ModelInfo, home: DataHome, plan: EvalPlan, label: str) -> float:
    """Perplexity of `info`'s model on `label`'s validation blocks."""
    from trainer.finetune import evaluate
    from trainer.packing import valid_blocks

    loaded = poet.loader.load(info)
    with poet.loader.lock:
        poet.loader.activate(loaded)
        data = valid_blocks(
            home,
            loaded.tokenizer,
            dataset=plan.dataset,
            label=label,
            block_size=plan.block_size,
            max_words=plan.max_words,
            seed=plan.seed,
            eval_blocks=plan.valid_blocks,
            tokens=loaded.tokens,
        )
        loss = evaluate(loaded.module, data, 8, poet.device, None)
        # evaluate() hands the model back in training mode; sampling needs it in eval mode.
        loaded.module.eval()
    return math.exp(min(loss, 50.0))


def _training_texts(home: DataHome, dataset: str, labels: list[str], max_words: int) -> list[str]:
    from trainer.packing import label_texts

    return [
        text for label in labels for text in label_texts(home, dataset, label, "train", max_words)
    ]


def run_eval(
    home: DataHome, poet: Poet, plan: EvalPlan, progress: Progress | None = None
) -> EvalReport:
    """Evaluate every model in `plan.emotions` that exists, then the base as the control."""
    report = progress or (lambda what, done, total: None)
    models = poet.refresh()
    chosen = [models[emotion] for emotion in plan.emotions if emotion in models]
    if not chosen:
        raise PoetstudioError(no_models_hint())
    results: list[ModelEval] = []
    neutral_ppl: dict[str, float] = {}
    for info in chosen:
        name = f"{info.emotion} ({info.source})"
        poems = generate_cases(
            lambda case, info=info: _poem(poet, info, case),
            plan.n,
            lambda done, total, name=name: report(name, done, total),
        )
        # A model has seen its own label's poems and, through its parent, the neutral ones.
        labels = sorted({info.emotion, NEUTRAL})
        index = TrainingIndex(_training_texts(home, plan.dataset, labels, plan.max_words))
        result = score_poems(name, info.emotion, poems, index)
        result.val_ppl = _valid_ppl(poet, info, home, plan, info.emotion)
        result.val_loss = math.log(result.val_ppl)
        results.append(result)
    if NEUTRAL in models:
        for emotion in EMOTIONS:
            if emotion in models and emotion in plan.emotions:
                report(f"neutral ppl on {emotion}", 0, 1)
                neutral_ppl[emotion] = _valid_ppl(poet, models[NEUTRAL], home, plan, emotion)
    if plan.include_base:
        base = _base_info(poet, chosen)
        poems = generate_cases(
            lambda case: _poem(poet, base, case),
            plan.n,
            lambda done, total: report(BASE_NAME, done, total),
        )
        for info in chosen:
            control = score_poems(BASE_NAME, info.emotion, poems, None)
            control.val_ppl = _valid_ppl(poet, base, home, plan, info.emotion)
            control.val_loss = math.log(control.val_ppl)
            results.append(control)
    header = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "poems per model": plan.n,
        "dataset": plan.dataset,
        "device": poet.device,
        "sampling": SamplingParams().to_dict(),
        "validation": f"{plan.valid_blocks} blocks of {plan.block_size} tokens, seed {plan.seed}",
    }
    return EvalReport(results, neutral_ppl, header)


def write_reports(report: EvalReport, folder: Path, command: str) -> tuple[Path, Path]:
    """Write the JSON and Markdown reports atomically; return their paths."""
    from trainer.atomic import atomic_write_json, atomic_write_text

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = folder / f"eval-{stamp}.json"
    md_path = folder / f"eval-{stamp}.md"
    atomic_write_json(json_path, {"command": command, **report.to_json()})
    markdown = render_markdown(report.results, command, report.header)
    if report.neutral_ppl:
        markdown += "\n## Neutral model's perplexity on each emotion's validation split\n\n"
        markdown += "| split | neutral ppl | emotion model ppl |\n|---|---|---|\n"
        own = {r.target: r.val_ppl for r in report.results if r.name != BASE_NAME}
        for emotion, ppl in report.neutral_ppl.items():
            mine = own.get(emotion)
            markdown += f"| {emotion} | {ppl:.1f} | {mine:.1f} |\n" if mine else ""
    atomic_write_text(md_path, markdown)
    return json_path, md_path
