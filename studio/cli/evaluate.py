"""CLI command: eval, the measured truth about the emotion models, and the strength sweep."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from studio.cli.common import bundled_dir, console, handle_errors, home

if TYPE_CHECKING:
    from rich.table import Table

    from studio.core.evalrun import EvalReport
    from trainer.evaluation.formcost import Interval
    from trainer.evaluation.metrics import ModelEval


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    # Extra arguments are the rest of `--strength 0 0.5 1` and `--form free sonnet`: click gives
    # an option one value. Numbers belong to --strength, names to --form.
    app.command(name="eval", context_settings={"allow_extra_args": True})(evaluate)


def split_rest(rest: list[str]) -> tuple[list[str], list[str]]:
    """The bare arguments after the options: (numbers, for --strength; names, for --form)."""
    numbers, names = [], []
    for word in rest:
        try:
            float(word)
        except ValueError:
            names.append(word)
        else:
            numbers.append(word)
    return numbers, names


def parse_forms(given: list[str] | None, rest: list[str]) -> tuple[str, ...] | None:
    """The forms to write: `--form` values plus the bare names after them, in order, each once.

    None means none were given. Raises BadParameter for a bare name without `--form` and
    PoetstudioError for an unknown form.
    """
    from trainer.common.form import check_form_name

    if rest and not given:
        raise typer.BadParameter(f"unexpected argument {rest[0]!r}", param_hint="--form")
    names = [check_form_name(name) for name in [*(given or []), *rest]]
    return tuple(dict.fromkeys(names)) if names else None


def parse_strengths(given: list[float] | None, rest: list[str]) -> tuple[float, ...] | None:
    """The swept strengths: `--strength` values plus the bare numbers after them, sorted.

    None means none were given. Raises BadParameter for a bare argument without `--strength`
    or one that is not a number, and PoetstudioError for a strength out of range.
    """
    from studio.core.generation.settings import SamplingParams

    if rest and not given:
        raise typer.BadParameter(f"unexpected argument {rest[0]!r}", param_hint="--strength")
    values = list(given or [])
    for word in rest:
        try:
            values.append(float(word))
        except ValueError:
            raise typer.BadParameter(f"not a number: {word!r}", param_hint="--strength") from None
    for value in values:
        SamplingParams(strength=value).validate()
    return tuple(sorted(set(values))) if values else None


@handle_errors
def evaluate(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option("--quick", help="10 poems per model, for smoke runs.")
    ] = False,
    n: Annotated[int | None, typer.Option("-n", help="Poems per model (default 50).")] = None,
    emotion: Annotated[
        list[str] | None, typer.Option("--emotion", "-e", help="Only these emotions (repeatable).")
    ] = None,
    strength: Annotated[
        list[float] | None,
        typer.Option(
            "--strength",
            metavar="S [S ...]",
            help="Guidance strengths to sweep, e.g. --strength 0 0.5 1 1.5 2 (default: the"
            " studio's default strength).",
        ),
    ] = None,
    form: Annotated[
        list[str] | None,
        typer.Option(
            "--form",
            metavar="NAME [NAME ...]",
            help="Forms to write every model's poems in, e.g. --form free quatrain sonnet haiku:"
            " adds rhyme, syllable and meter accuracy per emotion and form, and each form's"
            " fidelity against free verse (default: free verse alone).",
        ),
    ] = None,
    dataset: Annotated[str, typer.Option(help="Dataset for perplexity and copies.")] = "clean",
    base: Annotated[bool, typer.Option("--base/--no-base", help="Evaluate the base too.")] = True,
    stutter_guard: Annotated[
        bool,
        typer.Option(
            "--stutter-guard/--no-stutter-guard",
            help="Sample with the stutter guard, as the studio does (off: to measure it).",
        ),
    ] = True,
    line_tries: Annotated[
        int | None,
        typer.Option(
            "--line-tries",
            help="Tries of a formed line the form forced, as write's --line-tries (1: every"
            " line as it comes; default: write's).",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cuda, mps or cpu.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: <home>/eval).")] = None,
) -> None:
    """Sample every model at each strength; report fidelity, degeneration, fluency and copying,
    and the strength the default-strength rule picks."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    from studio.core.evalrun import (
        EvalPlan,
        EvalProgress,
        missing_extras,
        preflight,
        run_eval,
    )
    from studio.core.generation.poet import Poet
    from studio.core.generation.settings import DEFAULT_STRENGTH, SamplingParams
    from trainer.common.emotions import MODEL_EMOTIONS, check_emotion
    from trainer.evaluation.metrics import DEFAULT_N, QUICK_N

    data = home()
    count = n if n is not None else (QUICK_N if quick else DEFAULT_N)
    if count < 1:
        raise typer.BadParameter("-n must be at least 1")
    # Without --form every bare argument is a strength, and a name gets the strengths' error.
    numbers, names = split_rest(list(ctx.args)) if form else (list(ctx.args), [])
    strengths = parse_strengths(strength, numbers) or (DEFAULT_STRENGTH,)
    forms = parse_forms(form, names)
    chosen = tuple(check_emotion(e) for e in emotion) if emotion else MODEL_EMOTIONS
    # An out-of-range count gets the same one-line error as write's.
    tried = SamplingParams() if line_tries is None else SamplingParams(line_tries=line_tries)
    plan = EvalPlan(
        n=count,
        dataset=dataset,
        emotions=chosen,
        include_base=base,
        strengths=strengths,
        stutter_guard=stutter_guard,
        forms=forms,
        line_tries=tried.validate().line_tries,
    )
    folder = out or data.evals
    preflight(data, plan, folder)
    for note in missing_extras():
        console.print(note, markup=False)
    poet = Poet(data, device, bundled_dir=bundled_dir())
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        overall = bar.add_task("poems of all runs", total=None)
        current = bar.add_task("loading", total=None)

        def on_progress(step: EvalProgress) -> None:
            overall_text = f"run {step.run}/{step.runs}, poems of all runs"
            bar.update(
                overall, description=overall_text, completed=step.poems_done, total=step.poems_total
            )
            bar.update(current, description=step.what, completed=step.done, total=step.total)

        def on_run(result: ModelEval) -> None:
            bar.console.print(Text(_run_line(result)))

        report = run_eval(data, poet, plan, on_progress, on_run)
    for table in _results_tables(report, count):
        console.print(table)
    console.print(_sweep_table(report))
    if forms:
        console.print(_form_table(report))
    _print_choice(report)
    command = "poetstudio " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "poetstudio eval"
    _save(report, folder, command)


def _save(report: EvalReport, out: Path, command: str) -> None:
    """Write the reports as one unit and say what was written, interrupted or not."""
    from studio.cli.common import fail
    from studio.core.evalrun import new_report_folder, write_reports

    folder = new_report_folder(out)
    try:
        paths = write_reports(report, folder, command)
        names = ", ".join(path.name for path in paths.files())
        console.print(f"reports written to {folder}: {names}", markup=False, soft_wrap=True)
    except KeyboardInterrupt:
        if folder.is_dir():
            written = ", ".join(sorted(path.name for path in folder.iterdir()))
            message = f"interrupted; the reports were written whole to {folder}: {written}"
            raise fail(message, 130) from None
        raise fail("interrupted while writing the reports; none was written", 130) from None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _run_line(r: ModelEval) -> str:
    """One plain line per finished (model, strength) run, so a long sweep shows its figures."""
    from trainer.evaluation.metrics import strength_label

    where = r.name if r.strength is None else f"{r.name} strength {strength_label(r)}"
    return (
        f"done {where}: EmoLex {_pct(r.fidelity)}, judge"
        f" {_pct(r.judge_fidelity)}, distinct-1 {r.poem_distinct_1:.2f}, junk {_pct(r.junk_poems)},"
        f" stutter {_pct(r.stutter_poems)}, base ppl {_num(r.base_ppl)}"
    )


def _results_tables(report: EvalReport, count: int) -> list[Table]:
    """Every row twice, so each table fits an 80-column terminal: fidelity and degeneration,
    then copying, length and perplexity."""
    from rich.table import Table
    from rich.text import Text

    from trainer.evaluation.metrics import strength_label

    first = Table(title=f"poetstudio eval ({count} poems per model): fidelity and degeneration")
    second = Table(title="copying, length and perplexity")
    for table in (first, second):
        for column in ("model", "target", "strength"):
            table.add_column(column)
    for column in ("EmoLex", "judge", "dist-1", "<0.5", "junk", "stutter"):
        first.add_column(column, justify="right")
    for column in ("dist-2", "copied", "lines", "base ppl", "val ppl"):
        second.add_column(column, justify="right")
    for r in report.results:
        names = (Text(r.name), Text(r.target), Text(strength_label(r)))
        first.add_row(
            *names,
            _pct(r.fidelity),
            _pct(r.judge_fidelity),
            f"{r.poem_distinct_1:.2f}",
            _pct(r.low_distinct_poems),
            _pct(r.junk_poems),
            _pct(r.stutter_poems),
        )
        second.add_row(
            *names,
            f"{r.distinct_2:.2f}",
            f"{100 * r.copied_lines:.1f}%",
            f"{r.mean_lines:.1f}",
            _num(r.base_ppl),
            _num(r.val_ppl),
        )
    return [first, second]


def _form_table(report: EvalReport) -> Table:
    """Per form and strength, pooled over the emotion models: form accuracy beside its cost."""
    from rich.table import Table

    from trainer.evaluation.formcost import summarise_forms

    table = Table(title="form (pooled over the emotion models; vs free: points, 95% interval)")
    for column in ("form", "strength"):
        table.add_column(column)
    columns = ("rhyme", "syl", "±1", "poems", "meter", "EmoLex", "vs free", "judge", "vs free")
    for column in columns:
        table.add_column(column, justify="right")
    for s in summarise_forms(report.results):
        score = s.score
        table.add_row(
            s.form,
            "—" if s.strength is None else f"{s.strength:g}",
            _pct(score.rhyme_accuracy),
            _pct(score.syllable_accuracy),
            _pct(score.syllable_near_accuracy),
            _pct(score.poems_exact),
            _pct(score.meter_accuracy),
            _pct(s.fidelity),
            _interval(s.emolex_vs_free),
            _pct(s.judge_fidelity),
            _interval(s.judge_vs_free),
        )
    return table


def _interval(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    low, high = 100 * interval.low, 100 * interval.high
    return f"{100 * interval.difference:+.0f} [{low:+.0f},{high:+.0f}]"


def _sweep_table(report: EvalReport) -> Table:
    """Per strength, the means over the emotion models and whether it keeps the rule's limits."""
    from rich.table import Table

    table = Table(title="strength sweep (means over the emotion models)")
    table.add_column("strength")
    columns = ("EmoLex", "judge", "dist-1", "<0.5", "junk", "stutter", "copied", "ppl vs 0", "ok")
    for column in columns:
        table.add_column(column, justify="right")
    for s in report.choice.sweep:
        table.add_row(
            f"{s.strength:g}",
            _pct(s.fidelity),
            _pct(s.judge_fidelity),
            f"{s.poem_distinct_1:.2f}",
            _pct(s.low_distinct_poems),
            _pct(s.junk_poems),
            _pct(s.stutter_poems),
            f"{100 * s.copied_lines:.1f}%",
            "—" if s.ppl_ratio is None else f"{s.ppl_ratio:.2f}x",
            "yes" if s.passes else "no",
        )
    return table


def _print_choice(report: EvalReport) -> None:
    """The strength the rule picks, the rule itself, and why it fell back if it did."""
    choice = report.choice
    picked = "none" if choice.strength is None else f"{choice.strength:g}"
    for s in choice.sweep:
        if not s.passes:
            console.print(f"strength {s.strength:g} breaks: {'; '.join(s.failures)}", markup=False)
    console.print(f"picked strength: {picked} (ranked by {choice.score})", markup=False)
    console.print(f"rule: pick {choice.rule}", markup=False, soft_wrap=True)
    for note in choice.notes:
        console.print(f"note: {note}", markup=False)
