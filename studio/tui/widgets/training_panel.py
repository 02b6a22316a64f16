"""The training panel: the models with their manifest figures, a Train button, and live jobs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, DataTable, Select, Static

from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.job_card import JobCard
from studio.tui.widgets.literal import literal
from trainer.common.emotions import MODEL_EMOTIONS

# Finished jobs stay on the panel for a while so their final figures can be read.
FINISHED_SHOWN = 3
COLUMNS = ("emotion", "source", "method", "steps", "best val ppl", "base / how to train")


def _figure(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) else "-"


def model_row(emotion: str, info: Any | None, hint: str, broken: bool = False) -> tuple[Text, ...]:
    """One table row: a model's manifest figures, or why it is broken, or how to train it."""
    name = Text(emotion, style=f"bold {colour_of(emotion)}")
    if info is None:
        state = Text("broken", "bold red") if broken else Text("untrained", "dim")
        return (name, state, Text(""), Text(""), Text(""), literal(hint, "dim"))
    manifest = info.manifest
    metrics = manifest.get("metrics") or {}
    return (
        name,
        literal(info.source),
        literal(info.method),
        Text(_figure(manifest.get("steps"), "d")),
        Text(_figure(metrics.get("best_val_ppl"), ".1f")),
        literal(_short_base(info.base_spec)),
    )


def _short_base(spec: str) -> str:
    """A base for the table: a local folder by its name (full paths crowd out the figures)."""
    return Path(spec).name if Path(spec).is_absolute() else spec


class TrainingPanel(Vertical):
    """Models table, the train form, and one JobCard per job worth showing."""

    class TrainRequested(Message):
        """The user asked to train a model for `emotion` in the background."""

        def __init__(self, emotion: str) -> None:
            super().__init__()
            self.emotion = emotion

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

    def on_mount(self) -> None:
        self.border_title = "Models and training"
        self.query_one(DataTable).add_columns(*COLUMNS)

    def set_models(
        self, models: dict[str, Any], hints: dict[str, str], broken: Collection[str] = ()
    ) -> None:
        """Fill the models table: every emotion, trained, untrained or broken (`broken`)."""
        table = self.query_one(DataTable)
        table.clear()
        for emotion in MODEL_EMOTIONS:
            row = model_row(emotion, models.get(emotion), hints.get(emotion, ""), emotion in broken)
            table.add_row(*row)

    def set_jobs(self, jobs: Sequence[Any]) -> None:
        """Show every live job and the newest finished ones, from `list_jobs`."""
        shown = [j for j in jobs if j.alive]
        shown += [j for j in jobs if not j.alive][:FINISHED_SHOWN]
        container = self.query_one("#jobs", VerticalScroll)
        self.query_one("#jobs-empty", Static).display = not shown
        wanted = {f"job-{j.id}" for j in shown}
        for card in list(container.query(JobCard)):
            if card.id not in wanted:
                card.remove()
        for job in shown:
            found = container.query(f"#job-{job.id}")
            card = found.first(JobCard) if found else None
            if card is None:
                card = JobCard(job.id, id=f"job-{job.id}")
                container.mount(card)
                # A freshly mounted card composes after this call; draw once it exists.
                self.call_after_refresh(
                    card.refresh_from, job.emotion, job.progress, job.state, job.alive
                )
            else:
                card.refresh_from(job.emotion, job.progress, job.state, job.alive)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id != "train-start":
            return
        event.stop()
        emotion = self.query_one("#train-emotion", Select).value
        if isinstance(emotion, str):
            self.post_message(self.TrainRequested(emotion))
