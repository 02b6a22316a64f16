"""The CLI's progress displays: a Rich rendering of a job's progress, redrawn as its events arrive,
and the download bar that `corpus fetch` draws while the corpus file comes in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from studio.core.losscurve import chart_title, draw_loss_curve
from trainer.common.home import DataHome
from trainer.training.events import JobProgress, format_duration, format_mfu

if TYPE_CHECKING:
    from trainer.corpus.download import ProgressCallback


# The loss chart under `jobs follow`'s figures: left out where it would be too cramped to read.
CHART_MIN_WIDTH = 60
CHART_MAX_WIDTH = 120
CHART_HEIGHT = 14
CHART_MIN_HEIGHT = 8


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(progress: JobProgress) -> str:
    """One plain line: status, step/total, epoch, losses, val ppl, tokens/s, MFU and ETA."""
    parts = [
        f"{progress.status}",
        f"step {progress.step}/{progress.total_steps or '?'}",
        f"epoch {progress.epoch:.2f}",
        f"loss {_number(progress.loss)}",
        f"smooth {_number(progress.smooth_loss)}",
        f"val ppl {_number(progress.val_ppl, 2)}",
        f"{_number(progress.tokens_per_s, 0)} tok/s",
        f"mfu {format_mfu(progress.mfu)}",
        f"eta {format_duration(progress.eta_s)}",
    ]
    return "  ".join(parts)


def render(progress: JobProgress, job_id: str) -> RenderableType:
    """The full display: a header, a progress bar, a table of figures and the loss chart."""
    title = Text.assemble(
        ("training ", "bold"),
        (progress.emotion or "?", "bold magenta"),
        f"  {progress.method or '?'} on {progress.device or '?'}  base ",
        progress.base or "?",
        f"  job {job_id}",
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(1, progress.total_steps), completed=progress.step, width=40),
        Text(f"{progress.step}/{progress.total_steps or '?'} steps"),
        Text(f"{progress.fraction:.0%}"),
    )
    figures = Table.grid(padding=(0, 3))
    figures.add_row(
        Text(f"epoch {progress.epoch:.2f}"),
        Text(f"loss {_number(progress.loss)}"),
        Text(f"smoothed {_number(progress.smooth_loss)}"),
        Text(f"lr {_number(progress.lr, 6) if progress.lr is not None else '-'}"),
    )
    figures.add_row(
        Text(f"val loss {_number(progress.val_loss)}"),
        Text(f"val ppl {_number(progress.val_ppl, 2)}"),
        Text(f"best ppl {_number(progress.best_val_ppl, 2)}"),
        Text(
            f"{_number(progress.tokens_per_s, 0)} tok/s  MFU {format_mfu(progress.mfu)}  "
            f"ETA {format_duration(progress.eta_s)}"
        ),
    )
    status = Text(f"status: {progress.status}")
    if progress.message:
        status.append(f"  {progress.message}")
    return Group(title, bar, figures, status, LossCurve(progress, job_id))


class LossCurve:
    """The job's loss curve and validation perplexity points, drawn by plotext as wide as the
    console allows; nothing before the first step or where it would not be readable."""

    def __init__(self, progress: JobProgress, job_id: str) -> None:
        self.progress = progress
        self.job_id = job_id

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = min(options.max_width, CHART_MAX_WIDTH)
        # The figures above the chart take about 8 rows of the terminal.
        height = min(CHART_HEIGHT, console.height - 8)
        if width < CHART_MIN_WIDTH or height < CHART_MIN_HEIGHT or not self.progress.curve:
            return
        import plotext

        plotext.clf()
        plotext.plotsize(width, height)
        plotext.theme("clear")  # the terminal's own colours, but for the two series
        title = chart_title(self.progress.emotion, self.job_id)
        draw_loss_curve(plotext, self.progress, title, width)
        yield Text.from_ansi(plotext.build())


def watch(
    home: DataHome,
    job_id: str,
    console: Console,
    should_quit: Callable[[], bool] | None = None,
) -> JobProgress:
    """Follow a job until it ends, drawing the live display (or plain lines when not a terminal)."""
    from trainer.jobs.watch import follow

    if not console.is_terminal:
        return _watch_plain(home, job_id, console, should_quit)
    from rich.live import Live

    with Live(render(JobProgress(), job_id), console=console, refresh_per_second=4) as live:
        return follow(
            home,
            job_id,
            lambda progress: live.update(render(progress, job_id)),
            should_quit=should_quit,
        )


def _watch_plain(
    home: DataHome, job_id: str, console: Console, should_quit: Callable[[], bool] | None
) -> JobProgress:
    """Print a summary line when an evaluation lands, every 10 s, and at the end."""
    from trainer.jobs.watch import follow

    last_ppl: float | None = None
    printed = 0.0
    last_step = -1

    def update(progress: JobProgress) -> None:
        nonlocal last_ppl, printed, last_step
        now = time.monotonic()
        changed = progress.val_ppl != last_ppl or now - printed >= 10
        if changed and progress.step != last_step:
            console.print(summary_line(progress), markup=False, highlight=False)
            last_ppl, printed, last_step = progress.val_ppl, now, progress.step

    progress = follow(home, job_id, update, should_quit=should_quit)
    console.print(summary_line(progress), markup=False, highlight=False)
    return progress


@contextlib.contextmanager
def download_bar(description: str, console: Console | None = None) -> Iterator[ProgressCallback]:
    """A transient bar (bytes, rate, time left) to pass to `download(progress=...)`."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
