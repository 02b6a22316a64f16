"""The loss chart of one training job: its smoothed loss per step and its validation perplexity."""

from __future__ import annotations

from textual.app import RenderResult
from textual_plotext import PlotextPlot

from studio.core.losscurve import chart_title, draw_loss_curve
from trainer.training.events import JobProgress


class LossChart(PlotextPlot):
    """A plotext chart of the job given to `show`, redrawn when its curve grows."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = ""
        self._progress = JobProgress()
        self._drawn: tuple[object, ...] = ()

    @property
    def progress(self) -> JobProgress:
        """The progress of the job the chart shows."""
        return self._progress

    def show(self, emotion: str, job_id: str, progress: JobProgress) -> None:
        """Chart `progress`, the folded events of job `job_id`; redraws only what changed."""
        title = chart_title(emotion, job_id)
        drawn = (title, progress.total_steps, progress.curve[-1:], len(progress.evals))
        self._title, self._progress = title, progress
        if drawn != self._drawn:
            self._drawn = drawn
            self.refresh()

    def render(self) -> RenderResult:
        self.plt.clear_data()
        draw_loss_curve(self.plt, self._progress, self._title, self.size.width)
        return super().render()
