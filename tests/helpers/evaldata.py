"""Helpers for the evaluation tests: scored rows with made-up figures, for the strength rule."""

from __future__ import annotations

from typing import Any

from trainer.common.emotions import EMOTIONS
from trainer.evaluation.metrics import ModelEval


def sweep_row(target: str, strength: float, **figures: float | None) -> ModelEval:
    """A scored row with made-up figures: good poems unless told otherwise."""
    values: dict[str, Any] = {
        "fidelity": 0.5,
        "judge_fidelity": 0.3,
        "poem_distinct_1": 0.8,
        "low_distinct_poems": 0.0,
        "junk_poems": 0.0,
        "stutter_poems": 0.0,
        "copied_lines": 0.0,
        "base_ppl": 40.0,
        **figures,
    }
    return ModelEval(
        name=f"{target} (bundled)",
        target=target,
        n=10,
        labels={},
        fidelity_excl_mixed=None,
        distinct_1=0.5,
        distinct_2=0.9,
        copied_span_poems=0.0,
        mean_lines=5.0,
        mean_words=30.0,
        strength=strength,
        **values,
    )


def sweep(per_strength: dict[float, dict[str, float | None]]) -> list[ModelEval]:
    """The same figures for every emotion at each strength."""
    return [
        sweep_row(emotion, strength, **figures)
        for strength, figures in per_strength.items()
        for emotion in EMOTIONS
    ]
