"""The training panel: the models with their manifest figures, a Train button, live jobs and a
loss chart; it watches the jobs, and starts and stops them."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widgets import Button, DataTable, Select, Static

from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.job_card import JobCard
from studio.tui.widgets.literal import literal
from trainer.common.emotions import MODEL_EMOTIONS
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

if TYPE_CHECKING:
    from studio.core.registry import ModelInfo
    from studio.tui.widgets.loss_chart import LossChart
    from trainer.jobs.control import JobInfo
    from trainer.jobs.watch import JobWatcher

# Finished jobs stay on the panel for a while so their final figures can be read.
FINISHED_SHOWN = 3
COLUMNS = ("emotion", "source", "method", "steps", "best val ppl", "base / how to train")


def _figure(value: float | None, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def model_row(
    emotion: str, info: ModelInfo | None, hint: str, broken: bool = False
) -> tuple[Text, ...]:
    """One table row: a model's manifest figures, or why it is broken, or how to train it."""
    name = Text(emotion, style=f"bold {colour_of(emotion)}")
    if info is None:
        state = Text("broken", "bold red") if broken else Text("untrained", "dim")
        return (name, state, Text(""), Text(""), Text(""), literal(hint, "dim"))
    return (
        name,
        literal(info.source),
        literal(info.method),
        Text(_figure(info.manifest.steps, "d")),
        Text(_figure(info.manifest.best_val_ppl, ".1f")),
        literal(_short_base(info.base_spec)),
    )


def _short_base(spec: str) -> str:
    """A base for the table: a local folder by its name (full paths crowd out the figures)."""
    return Path(spec).name if Path(spec).is_absolute() else spec


class TrainingPanel(Vertical):
    """Models table, the train form, one JobCard per job worth showing, and a job's loss chart.

    It watches the data home's jobs itself (a poll every POLL_S seconds, on a worker thread, that
    reads only what changed), starts and stops jobs, and posts ModelsChanged when a job finishes
    a model.
    """

    POLL_S = 1.0

    class ModelsChanged(Message):
        """A job finished training the models of `emotions`: the model folders changed."""

        def __init__(self, emotions: list[str]) -> None:
            super().__init__()
            self.emotions = emotions

    class _Polled(Message, bubble=False):
        """Poll worker → panel: the jobs now, and those that finished since the last poll."""

        def __init__(self, jobs: list[JobInfo], finished: list[JobInfo]) -> None:
            super().__init__()
            self.jobs = jobs
            self.finished = finished

    def __init__(self, home: DataHome, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.home = home
        self._watcher: JobWatcher | None = None  # made by the first poll: its imports are slow
        # Held through a poll and its message, so the UI gets polls one at a time, in order.
        self._poll_lock = threading.Lock()
        self._states: dict[str, str] | None = None  # each job's state at the last poll
        self._charted = ""  # the job the chart shows

    def compose(self) -> ComposeResult:
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="train-form"):
            yield Select(
                [(e, e) for e in MODEL_EMOTIONS],
                value=MODEL_EMOTIONS[0],
                allow_blank=False,
                id="train-emotion",
                compact=True,
            )
            yield Button("Train in background", id="train-start", variant="primary", compact=True)
        yield Static("No training jobs yet.", id="jobs-empty")
        yield VerticalScroll(id="jobs")
        # The loss chart is mounted below the jobs when there is a job to chart: plotext's import
        # is not paid before the first frame.

    def on_mount(self) -> None:
        self.border_title = "Models and training"
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.call_after_refresh(self.poll_jobs)  # the first frame goes out first
        self.set_interval(self.POLL_S, self._tick)

    def set_models(
        self, models: dict[str, ModelInfo], hints: dict[str, str], broken: Collection[str] = ()
    ) -> None:
        """Fill the models table: every emotion, trained, untrained or broken (`broken`)."""
        table = self.query_one(DataTable)
        table.clear()
        for emotion in MODEL_EMOTIONS:
            row = model_row(emotion, models.get(emotion), hints.get(emotion, ""), emotion in broken)
            table.add_row(*row)

    # ----- watching jobs ----------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._poll_lock.locked():  # a slow poll is not queued up behind
            self.poll_jobs()

    def poll_jobs(self) -> None:
        """Look at the jobs again (on a worker thread) and show what changed."""
        self._poll()

    @work(thread=True, exit_on_error=False, group="jobs")
    def _poll(self) -> None:
        from trainer.jobs.watch import JobWatcher

        with self._poll_lock:
            if self._watcher is None:
                self._watcher = JobWatcher(self.home)
            try:
                jobs = self._watcher.poll()
            except (OSError, PoetstudioError):
                return
            # On the first poll every job is old news; later, a job is new when it finished.
            before = self._states
            finished = [
                job
                for job in jobs
                if before is not None and job.state == "done" and before.get(job.id) != "done"
            ]
            self._states = {job.id: job.state for job in jobs}
            self.post_message(self._Polled(jobs, finished))

    @on(_Polled)
    def _polled(self, message: _Polled) -> None:
        self.set_jobs(message.jobs)
        if message.finished:
            self.post_message(self.ModelsChanged([job.emotion for job in message.finished]))

    def set_jobs(self, jobs: Sequence[JobInfo]) -> None:
        """Show every live job and the newest finished ones, and chart one of them."""
        shown = [j for j in jobs if j.alive]
        shown += [j for j in jobs if not j.alive][:FINISHED_SHOWN]
        container = self.query_one("#jobs", VerticalScroll)
        self.query_one("#jobs-empty", Static).display = not shown
        wanted = {f"job-{j.id}" for j in shown}
        cards = {card.id: card for card in container.query(JobCard)}
        for card_id, gone in cards.items():
            if card_id not in wanted:
                gone.remove()
        for job in shown:
            card = cards.get(f"job-{job.id}")
            if card is None:
                card = JobCard(job.id, id=f"job-{job.id}")
                container.mount(card)
                # A freshly mounted card composes after this call; draw once it exists.
                self.call_after_refresh(
                    card.refresh_from, job.emotion, job.progress, job.state, job.alive
                )
            else:
                card.refresh_from(job.emotion, job.progress, job.state, job.alive)
        self._chart(shown)

    def _chart(self, shown: Sequence[JobInfo]) -> None:
        """Chart the job picked last while it is shown, else the newest live one or the newest."""
        if not shown:
            self.query("#loss-chart").set(display=False)
            return
        chart = self._loss_chart()
        chart.display = True
        picked = [j for j in shown if j.id == self._charted] or shown
        job = picked[0]  # live jobs come first in `shown`
        self._charted = job.id
        chart.show(job.emotion, job.id, job.progress)

    def _loss_chart(self) -> LossChart:
        from studio.tui.widgets.loss_chart import LossChart

        found = self.query("#loss-chart")
        if found:
            return found.first(LossChart)
        chart = LossChart(id="loss-chart")
        self.mount(chart)
        return chart

    @on(JobCard.Picked)
    def _card_picked(self, event: JobCard.Picked) -> None:
        self._charted = event.job_id
        self.poll_jobs()

    # ----- starting and stopping --------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "train-start":
            return
        event.stop()
        emotion = self.query_one("#train-emotion", Select).value
        if isinstance(emotion, str):
            self.train(emotion)

    def train(self, emotion: str) -> None:
        """Start training a model for `emotion` as a background job."""
        self._start_training(emotion)

    @work(thread=True, exit_on_error=False, group="train")
    def _start_training(self, emotion: str) -> None:
        from trainer.jobs.control import start_job

        try:
            job_id = start_job(self.home, ["--emotion", emotion])
        except (OSError, PoetstudioError) as exc:
            self._notify(str(exc), title="Cannot train", severity="error")
            return
        self._charted = job_id
        self._notify(f"Training {emotion} in the background: job {job_id}")
        self.poll_jobs()

    @on(JobCard.StopRequested)
    def _stop_requested(self, event: JobCard.StopRequested) -> None:
        self._stop_job(event.job_id)

    @work(thread=True, exit_on_error=False, group="train")
    def _stop_job(self, job_id: str) -> None:
        from trainer.jobs.control import stop_job

        try:
            stopping = stop_job(self.home, job_id)
        except (OSError, PoetstudioError) as exc:
            self._notify(str(exc), severity="error")
            return
        message = f"Stopping job {job_id} (it saves a checkpoint)" if stopping else "Not running"
        self._notify(message)

    def _notify(
        self, message: str, title: str = "", severity: SeverityLevel = "information"
    ) -> None:
        """Notify from a worker thread; job ids and error text are shown literally."""
        self.app.call_from_thread(
            self.app.notify, message, title=title, severity=severity, markup=False
        )
