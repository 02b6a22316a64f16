"""The live display of `poetstudio jobs follow`: figures, and the loss chart where it fits."""

from __future__ import annotations

import math

from rich.console import Console

from studio.cli.progress import render
from trainer.training.events import JobProgress

JOB_ID = "20250101-120000-fear-ab12"


def running_job(steps: int = 80) -> JobProgress:
    progress = JobProgress()
    progress.apply({"event": "start", "time": 1.0, "emotion": "fear", "total_steps": 100})
    for step in range(1, steps + 1):
        loss = 2.5 + 2.5 * math.exp(-step / 20)
        progress.apply({"event": "step", "time": 2.0, "step": step, "smooth_loss": loss})
    progress.apply({"event": "eval", "time": 3.0, "step": 40, "val_ppl": 20.5, "val_loss": 3.0})
    return progress


def shown(progress: JobProgress, width: int, height: int = 40) -> list[str]:
    console = Console(width=width, height=height, color_system=None, record=True)
    console.print(render(progress, JOB_ID))
    return console.export_text().splitlines()


def test_the_display_draws_the_loss_curve_within_80_columns():
    lines = shown(running_job(), 80)
    assert all(len(line) <= 80 for line in lines)
    title = next(i for i, line in enumerate(lines) if "training loss ─, validation ppl ●" in line)
    chart = [line for line in lines[title:] if line.strip()]
    assert any("┤" in line and any("\u2800" < ch <= "\u28ff" for ch in line) for line in chart)
    assert sum(line.count("●") for line in chart[1:]) == 1  # one evaluation so far
    assert "step" in chart[-1] and "loss" in chart[-1] and "val ppl" in chart[-1]


def test_the_chart_is_left_out_where_the_terminal_is_too_narrow_or_too_short():
    progress = running_job()
    for width, height in ((59, 40), (80, 15)):
        lines = shown(progress, width, height)
        assert not any("validation ppl" in line for line in lines)
        assert any("status: running" in line for line in lines)


def test_there_is_no_chart_before_the_first_step():
    progress = JobProgress()
    progress.apply({"event": "start", "time": 1.0, "emotion": "fear", "total_steps": 100})
    assert not any("validation ppl" in line for line in shown(progress, 100))
