"""One training job's live progress: a progress bar, a loss sparkline, step, loss and ETA.

Clicking the card charts its job in the training panel's loss chart.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, ProgressBar, Sparkline, Static

from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.literal import visible
from trainer.training.events import JobProgress, format_duration, format_mfu


def job_summary(job_id: str, emotion: str, progress: JobProgress, state: str) -> Text:
    """The job's one-line summary from its events; `state` also says if its process died."""
    text = Text()
    text.append(visible(emotion or "?"), style=f"bold {colour_of(emotion)}")
    text.append(f"  {visible(job_id)}  ", style="dim")
    text.append(state, style="bold")
    text.append(f"  step {progress.step}/{progress.total_steps or '?'}")
    if progress.smooth_loss is not None:
        text.append(f"  loss {progress.smooth_loss:.3f}")
    if progress.val_ppl is not None:
        text.append(f"  val ppl {progress.val_ppl:.1f}")
    if progress.tokens_per_s:
        text.append(f"  {progress.tokens_per_s:.0f} tok/s")
    if progress.mfu is not None:
        text.append(f"  MFU {format_mfu(progress.mfu)}")
    if state == "running":
        text.append(f"  ETA {format_duration(progress.eta_s)}")
    if progress.message:
        text.append(f"  {visible(progress.message)}", style="italic")
    return text


class JobCard(Vertical):
    """Live view of one job; `refresh_from` redraws it from the job's folded events."""

    class StopRequested(Message):
        """The user asked to stop this job."""

        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    class Picked(Message):
        """The user clicked this job: chart it."""

        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, job_id: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="job-card")
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        yield Static("", classes="job-summary")
        with Horizontal(classes="job-bars"):
            yield ProgressBar(total=None, show_eta=False, classes="job-progress")
            yield Sparkline([], classes="job-loss")
            yield Button("Stop", variant="error", compact=True, classes="job-stop")

    def refresh_from(self, emotion: str, progress: JobProgress, state: str, alive: bool) -> None:
        """Redraw from the job's current progress and state."""
        self.query_one(".job-summary", Static).update(
            job_summary(self.job_id, emotion, progress, state)
        )
        bar = self.query_one(ProgressBar)
        if progress.total_steps:
            bar.update(total=progress.total_steps, progress=progress.step)
        self.query_one(Sparkline).data = [loss for _, loss in progress.curve[-120:]]
        running = alive and state in ("pending", "running")
        self.query_one(".job-stop", Button).display = running
        self.set_class(not running, "finished")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.StopRequested(self.job_id))

    def on_click(self) -> None:
        self.post_message(self.Picked(self.job_id))
