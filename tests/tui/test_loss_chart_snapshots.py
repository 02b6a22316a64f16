"""SVG snapshots of the loss chart, drawn from fixed job events (`--snapshot-update` rewrites)."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from studio.tui.widgets.loss_chart import LossChart
from trainer.training.events import JobProgress

JOB_ID = "20250101-120000-fear-ab12"
SIZE = (80, 20)


def folded(events: list[dict[str, object]]) -> JobProgress:
    """The progress that a job's events fold into."""
    progress = JobProgress()
    for record in events:
        progress.apply({"time": 1.0, **record})
    return progress


def running_job() -> JobProgress:
    """A job 120 steps into 200, its loss falling, evaluated every 30 steps."""
    events: list[dict[str, object]] = [{"event": "start", "emotion": "fear", "total_steps": 200}]
    for step in range(1, 121):
        loss = 2.6 + 2.4 * math.exp(-step / 30) + 0.05 * math.sin(step)
        events.append({"event": "step", "step": step, "loss": loss, "smooth_loss": loss})
        if step % 30 == 0:
            val_loss = 2.8 + 2.2 * math.exp(-step / 35)
            events.append(
                {"event": "eval", "step": step, "val_loss": val_loss, "val_ppl": math.exp(val_loss)}
            )
    return folded(events)


class ChartApp(App[None]):
    """The chart alone, showing one job."""

    def __init__(self, progress: JobProgress) -> None:
        super().__init__()
        self.progress = progress

    def compose(self) -> ComposeResult:
        yield LossChart(id="chart")

    def on_mount(self) -> None:
        self.query_one(LossChart).show("fear", JOB_ID, self.progress)


def test_the_loss_chart_of_a_running_job(snap_compare):
    assert snap_compare(ChartApp(running_job()), terminal_size=SIZE)


def test_the_loss_chart_of_a_job_before_its_first_step(snap_compare):
    progress = folded([{"event": "start", "emotion": "fear", "total_steps": 200}])
    assert snap_compare(ChartApp(progress), terminal_size=SIZE)


async def test_the_chart_redraws_only_when_the_curve_grows():
    progress = running_job()
    app = ChartApp(progress)
    async with app.run_test(size=SIZE) as pilot:
        chart = app.query_one(LossChart)
        await pilot.pause()
        drawn: list[int] = []
        real_render = chart.render

        def render():
            drawn.append(1)
            return real_render()

        chart.render = render
        chart.show("fear", JOB_ID, progress)
        await pilot.pause()
        assert drawn == []
        progress.apply({"event": "step", "time": 2.0, "step": 121, "loss": 2.7, "smooth_loss": 2.7})
        chart.show("fear", JOB_ID, progress)
        await pilot.pause()
        assert drawn and chart.progress.curve[-1] == (121, 2.7)
