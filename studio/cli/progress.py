"""The live training display: a Rich rendering of a job's progress, redrawn as its events arrive."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console, Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trainer.common.home import DataHome
from trainer.jobs.events import JobProgress, format_duration


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(progress: JobProgress) -> str:
    """One plain line: status, step/total, epoch, losses, val ppl, tokens/s and ETA."""
    parts = [
        f"{progress.status}",
        f"step {progress.step}/{progress.total_steps or '?'}",
        f"epoch {progress.epoch:.2f}",
        f"loss {_number(progress.loss)}",
        f"smooth {_number(progress.smooth_loss)}",
        f"val ppl {_number(progress.val_ppl, 2)}",
        f"{_number(progress.tokens_per_s, 0)} tok/s",
        f"eta {format_duration(progress.eta_s)}",
    ]
    return "  ".join(parts)


def render(progress: JobProgress, job_id: str) -> RenderableType:
    """The full display: a header, a progress bar and a table of figures."""
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
        Text(f"{_number(progress.tokens_per_s, 0)} tok/s  ETA {format_duration(progress.eta_s)}"),
    )
    status = Text(f"status: {progress.status}")
    if progress.message:
        status.append(f"  {progress.message}")
    return Group(title, bar, figures, status)


def watch(
    home: DataHome,
    job_id: str,
    console: Console,
    should_quit: Callable[[], bool] | None = None,
) -> JobProgress:
    """Follow a job until it ends, drawing the live display (or plain lines when not a terminal)."""
    from trainer.jobs.control import follow

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
    from trainer.jobs.control import follow

    seen = {"evals": None, "printed": 0.0, "step": -1}

    def update(progress: JobProgress) -> None:
        now = time.monotonic()
        changed = progress.val_ppl != seen["evals"] or now - seen["printed"] >= 10
        if changed and progress.step != seen["step"]:
            console.print(summary_line(progress), markup=False, highlight=False)
            seen.update(evals=progress.val_ppl, printed=now, step=progress.step)

    progress = follow(home, job_id, update, should_quit=should_quit)
    console.print(summary_line(progress), markup=False, highlight=False)
    return progress
