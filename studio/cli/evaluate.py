"""CLI command: eval, the measured truth about the emotion models."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from studio.cli.common import bundled_dir, console, handle_errors, home


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="eval")(evaluate)


@handle_errors
def evaluate(
    quick: Annotated[
        bool, typer.Option("--quick", help="10 poems per model, for smoke runs.")
    ] = False,
    n: Annotated[int | None, typer.Option("-n", help="Poems per model (default 50).")] = None,
    emotion: Annotated[
        list[str] | None, typer.Option("--emotion", "-e", help="Only these emotions (repeatable).")
    ] = None,
    dataset: Annotated[str, typer.Option(help="Dataset for perplexity and copies.")] = "clean",
    base: Annotated[bool, typer.Option("--base/--no-base", help="Evaluate the base too.")] = True,
    device: Annotated[str | None, typer.Option(help="cuda, mps or cpu.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: <home>/eval).")] = None,
) -> None:
    """Sample every model with default settings and report fidelity, diversity and copying."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table
    from rich.text import Text

    from studio.evalrun import EvalPlan, run_eval, write_reports
    from studio.generate import Poet
    from trainer.emotions import MODEL_EMOTIONS, check_emotion
    from trainer.evaluate import DEFAULT_N, QUICK_N

    data = home()
    count = n if n is not None else (QUICK_N if quick else DEFAULT_N)
    if count < 1:
        raise typer.BadParameter("-n must be at least 1")
    chosen = tuple(check_emotion(e) for e in emotion) if emotion else MODEL_EMOTIONS
    plan = EvalPlan(n=count, dataset=dataset, emotions=chosen, include_base=base)
    poet = Poet(data, device, bundled_dir=bundled_dir())
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("loading", total=None)

        def on_progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=Text(what).plain, completed=done, total=total)

        report = run_eval(data, poet, plan, on_progress)
    table = Table(title=f"poetstudio eval ({count} poems per model)")
    for column in ("model", "target", "fidelity", "excl. mixed", "distinct-2", "copied lines"):
        table.add_column(column)
    for column in ("copied spans", "lines", "words", "val ppl"):
        table.add_column(column, justify="right")
    for r in report.results:
        excl = "—" if r.fidelity_excl_mixed is None else f"{100 * r.fidelity_excl_mixed:.0f}%"
        table.add_row(
            Text(r.name),
            r.target,
            f"{100 * r.fidelity:.0f}%",
            excl,
            f"{r.distinct_2:.2f}",
            f"{100 * r.copied_lines:.1f}%",
            f"{100 * r.copied_span_poems:.0f}%",
            f"{r.mean_lines:.1f}",
            f"{r.mean_words:.1f}",
            "—" if r.val_ppl is None else f"{r.val_ppl:.1f}",
        )
    console.print(table)
    command = "poetstudio " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "poetstudio eval"
    json_path, md_path = write_reports(report, out or data.evals, command)
    console.print(f"reports: {json_path} and {md_path}", markup=False)
