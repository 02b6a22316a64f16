"""CLI commands: train, jobs (list, follow, stop), models and setup."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from studio.cli.common import console, err_console, fail, handle_errors, home
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.chain import JOB_MEMORY_GIB, MAX_PARALLEL, POLL_S, ChainJob, ChainView
from trainer.jobs.control import JobInfo
from trainer.training.config import ResumeConflict, options_to_args, train_options
from trainer.training.events import (
    EVENTS_FILE,
    EventReader,
    JobProgress,
    fold_new,
    format_duration,
    format_mfu,
)

F = TypeVar("F", bound=Callable[..., Any])
_OPTIONS = {opt.name: opt for opt in train_options()}

jobs_app = typer.Typer(
    help="Training jobs: list them, re-attach to one, or stop one.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command()(train)
    app.command()(models)
    app.command()(setup)
    app.add_typer(jobs_app, name="jobs")


def _with_train_options(command: F) -> F:
    """Give `command` a keyword option for each TrainConfig field it does not declare itself.

    The options, their defaults and their help come from TrainConfig's field metadata (see
    `trainer.training.config.option`), the one list the job process parses too; the command
    receives the given ones as `**options` (None or False: not given).
    """
    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for opt in train_options():
        if opt.name in signature.parameters:
            continue
        if opt.kind is bool:
            annotation: Any = Annotated[bool, typer.Option(opt.flag, help=opt.help)]
            default: Any = False
        else:
            annotation = Annotated[opt.kind | None, typer.Option(opt.flag, help=opt.help)]
            default = None
        params.append(
            inspect.Parameter(
                opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return command


def _given_args(options: dict[str, Any]) -> list[str]:
    """The `train` argument list of the options given on the command line."""
    kinds = {opt.name: opt for opt in train_options()}
    values = {}
    for name, value in options.items():
        if value is None or value is False:
            continue
        # A switch given on the command line flips its field's default.
        values[name] = (not kinds[name].default) if kinds[name].kind is bool else value
    return options_to_args(values)


_SAFE_ON_RESUME = ", ".join(opt.flag for opt in train_options() if opt.resume_safe)


@_with_train_options
@handle_errors
def train(
    emotion: Annotated[str | None, typer.Option(help=_OPTIONS["emotion"].help)] = None,
    all_emotions: Annotated[
        bool, typer.Option("--all", help="Train neutral, then the 8 emotions.")
    ] = False,
    parallel: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --all: train N emotions at once once neutral is done, as separate "
            "processes (spread over the GPUs when there are several). Default: one per "
            f"{JOB_MEMORY_GIB:g} GiB of GPU memory, at most {MAX_PARALLEL} (12 jobs fit in an "
            "H200's 139 GiB, 16 did not); 1 without CUDA.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue this emotion's newest unfinished job from its checkpoint, with the "
            f"job's own settings: other options must match them; {_SAFE_ON_RESUME} may change "
            "(--device for this run only)."
        ),
    ] = False,
    detach: Annotated[
        bool, typer.Option(help="Run in the background and print the job id.")
    ] = False,
    **options: Any,
) -> None:
    """Fine-tune an emotion model, showing live progress (or in the background with --detach)."""
    from trainer.jobs.control import start_job

    args = _given_args(options)
    if resume:
        args.append("--resume")
    data = home()
    if parallel is not None and not all_emotions:
        raise PoetstudioError("--parallel runs several emotions at once; use it with --all")
    try:
        if all_emotions:
            if emotion:
                raise PoetstudioError("give either --emotion or --all, not both")
            _train_all(data, args, parallel, detach)
            return
        if not emotion:
            raise PoetstudioError("name the emotion to train, e.g. --emotion trust (or use --all)")
        job_id = start_job(data, ["--emotion", emotion, *args])
    except ResumeConflict as exc:
        raise fail(str(exc), code=2) from None
    if detach:
        console.print(job_id, markup=False, soft_wrap=True)
        err_console.print(
            f"follow it with `poetstudio jobs follow {job_id}`, "
            f"stop it with `poetstudio jobs stop {job_id}`",
            markup=False,
            soft_wrap=True,
        )
        return
    if not _run_foreground(data, job_id):
        raise typer.Exit(1)


def _train_all(data: DataHome, args: list[str], parallel: int | None, detach: bool) -> None:
    """`train --all`: the chain of trainer/jobs/chain.py, here or in a background process."""
    from trainer.jobs.chain import preflight_chain, run

    preflight_chain(data, args)
    if detach:
        from trainer.jobs.control import start_chain

        pid = start_chain(data, args, parallel)
        console.print(
            f"training all nine models in the background (pid {pid}); "
            "`poetstudio jobs` shows each job as it starts",
            markup=False,
            soft_wrap=True,
        )
        return
    if run(data, args, parallel, view=_ForegroundChain(data)) != 0:
        raise typer.Exit(1)


class _ForegroundChain(ChainView):
    """The chain drawn in the terminal: one job's live display, or a table of the running ones."""

    def __init__(self, data: DataHome) -> None:
        self.data = data
        self.parallel = 1
        self.readers: dict[str, tuple[EventReader, JobProgress]] = {}

    def plan(self, parallel: int, reason: str) -> None:
        self.parallel = parallel
        if parallel > 1:
            err_console.print(
                f"training neutral, then up to {parallel} emotions at once ({reason})",
                markup=False,
                soft_wrap=True,
            )

    def started(self, job: ChainJob) -> None:
        if self.parallel > 1:
            where = f" on GPU {job.gpu}" if job.gpu is not None else ""
            err_console.print(
                f"{job.emotion}: started job {job.id}{where}", markup=False, soft_wrap=True
            )

    def wait(self, running: Sequence[ChainJob]) -> None:
        if len(running) == 1:
            from studio.cli.progress import watch

            watch(self.data, running[0].id, console)
            # The display ends when the job's process looks gone, a moment before it is.
            running[0].process.wait()
            return
        if not console.is_terminal:
            while not _any_ended(running):
                time.sleep(POLL_S)
            return
        from rich.live import Live

        with Live(self._table(running), console=console, transient=True) as live:
            while not _any_ended(running):
                time.sleep(POLL_S)
                live.update(self._table(running))

    def stopping(self, running: Sequence[ChainJob]) -> None:
        err_console.print("stopping: saving a checkpoint…", markup=False, soft_wrap=True)

    def ended(self, job: ChainJob, info: JobInfo) -> None:
        _report(info.progress, job.id)

    def refused(self, emotion: str, message: str) -> None:
        err_console.print(f"error: {emotion}: {message}", markup=False, soft_wrap=True)

    def _table(self, running: Sequence[ChainJob]) -> Table:
        """The running jobs, one row each, from their events read so far."""
        table = Table(box=None, header_style="bold")
        for column in ("emotion", "job", "step", "loss", "val ppl", "tok/s", "MFU", "ETA"):
            table.add_column(column, no_wrap=column == "job")
        for job in running:
            reader, progress = self.readers.get(job.id) or (
                EventReader(job.path / EVENTS_FILE),
                JobProgress(),
            )
            progress = fold_new(reader, progress)
            self.readers[job.id] = (reader, progress)
            table.add_row(
                Text(job.emotion),
                Text(job.id),
                Text(f"{progress.step}/{progress.total_steps or '?'}"),
                Text("-" if progress.smooth_loss is None else f"{progress.smooth_loss:.3f}"),
                Text("-" if progress.val_ppl is None else f"{progress.val_ppl:.2f}"),
                Text("-" if progress.tokens_per_s is None else f"{progress.tokens_per_s:.0f}"),
                Text(format_mfu(progress.mfu)),
                Text(format_duration(progress.eta_s)),
            )
        return table


def _any_ended(running: Sequence[ChainJob]) -> bool:
    return any(job.process.poll() is not None for job in running)


def _run_foreground(data: DataHome, job_id: str) -> bool:
    """Show a job's progress until it ends; Ctrl-C asks it to checkpoint and stop. True if done."""
    from studio.cli.progress import watch
    from trainer.jobs.control import stop_job

    try:
        progress = watch(data, job_id, console)
    except KeyboardInterrupt:
        err_console.print("stopping: saving a checkpoint…", markup=False, soft_wrap=True)
        stop_job(data, job_id)
        progress = watch(data, job_id, console)
    return _report(progress, job_id)


def _report(progress: JobProgress, job_id: str) -> bool:
    """Print how a followed job ended; True when it finished a model."""
    status = progress.status
    if status == "done":
        ppl = f"{progress.best_val_ppl:.2f}" if progress.best_val_ppl is not None else "-"
        console.print(
            f"{progress.emotion} model saved to {progress.model_dir} (best val ppl {ppl})",
            markup=False,
            soft_wrap=True,
        )
        return True
    if status == "stopped":
        err_console.print(
            f"job {job_id} stopped at step {progress.step}; continue it with "
            f"`poetstudio train --emotion {progress.emotion} --resume`",
            markup=False,
            soft_wrap=True,
        )
        return False
    fail(progress.message or f"job {job_id} ended with status {status}")
    return False


@jobs_app.callback()
@handle_errors
def jobs(ctx: typer.Context) -> None:
    """List training jobs with status, progress and ETA."""
    if ctx.invoked_subcommand is not None:
        return
    from trainer.jobs.control import list_jobs

    infos = list_jobs(home())
    if not infos:
        console.print(
            "no training jobs yet; start one with `poetstudio train --emotion trust`", markup=False
        )
        return
    table = Table(box=None, header_style="bold")
    # The id is what every other command takes, so it is never cut: the other columns fold.
    table.add_column("job", no_wrap=True, min_width=max(len(info.id) for info in infos))
    for column in ("emotion", "state", "step", "loss", "val ppl", "tok/s", "MFU", "ETA"):
        table.add_column(column, overflow="fold")
    for info in infos:
        p = info.progress
        state = info.state + (" (resumable)" if info.resumable else "")
        table.add_row(
            Text(info.id),
            Text(info.emotion),
            Text(state),
            Text(f"{p.step}/{p.total_steps or '?'}"),
            Text("-" if p.smooth_loss is None else f"{p.smooth_loss:.3f}"),
            Text("-" if p.val_ppl is None else f"{p.val_ppl:.2f}"),
            Text("-" if p.tokens_per_s is None else f"{p.tokens_per_s:.0f}"),
            Text(format_mfu(p.mfu)),
            Text(format_duration(p.eta_s) if info.alive else "-"),
        )
    console.print(table)
    # Why a job is broken, or which event lines were skipped: one line each, below the table.
    for info in infos:
        if info.state == "broken":
            console.print(f"broken: {info.progress.message}", markup=False, soft_wrap=True)
        elif info.progress.skipped:
            console.print(
                f"note: job {info.id}: {info.progress.skipped} bad event line(s) skipped; "
                f"the first: {info.progress.note}",
                markup=False,
                soft_wrap=True,
            )


@jobs_app.command("follow")
@handle_errors
def jobs_follow(
    job_id: Annotated[str, typer.Argument(help="Job id from `poetstudio jobs`.")],
) -> None:
    """Re-attach to a job and show its live progress (Ctrl-C detaches; the job keeps running)."""
    from studio.cli.progress import watch
    from trainer.jobs.control import job_dir

    data = home()
    job_dir(data, job_id)
    try:
        progress = watch(data, job_id, console)
    except KeyboardInterrupt:
        err_console.print(f"detached; job {job_id} keeps running", markup=False, soft_wrap=True)
        return
    ended = progress.status in ("done", "stopped", "interrupted", "error")
    if ended and not _report(progress, job_id) and progress.status != "stopped":
        raise typer.Exit(1)


@jobs_app.command("stop")
@handle_errors
def jobs_stop(
    job_id: Annotated[str, typer.Argument(help="Job id from `poetstudio jobs`.")],
) -> None:
    """Stop a job gracefully: it saves a checkpoint first, so `train --resume` continues it."""
    from trainer.jobs.control import stop_job

    if stop_job(home(), job_id, wait_s=120):
        console.print(f"stopped job {job_id}", markup=False, soft_wrap=True)
    else:
        console.print(f"job {job_id} is not running", markup=False, soft_wrap=True)


@handle_errors
def models() -> None:
    """List the bundled and the user's models with their manifests' key figures."""
    from studio.cli.common import bundled_dir
    from studio.core.registry import find_models, scan_entries, train_hint

    data = home()
    entries = find_models(data, bundled_dir())
    if not entries:
        console.print(
            "no models yet; train one with `poetstudio train --emotion neutral`", markup=False
        )
        return
    # The studio's own resolution decides which folder of each emotion is used: a user folder,
    # even a broken one, hides the bundled model.
    scan = scan_entries(entries)
    table = Table(box=None, header_style="bold")
    for column in ("emotion", "source", "method", "base", "val ppl", "steps", "created", "path"):
        table.add_column(column, no_wrap=column in ("emotion", "source", "method"))
    for entry in entries:
        info = entry.info
        used = info is not None and scan.models.get(entry.emotion) is info
        hidden = not used and entry.path != scan.folders.get(entry.emotion)
        source = entry.source + (" (hidden by user)" if hidden else "")
        if info is None:
            cells = [entry.emotion, source, "broken", "-", "-", "-", "-", str(entry.path)]
        else:
            manifest = info.manifest
            ppl = manifest.best_val_ppl
            cells = [
                entry.emotion,
                source,
                info.method,
                info.base_spec,
                "-" if ppl is None else f"{ppl:.2f}",
                "-" if manifest.steps is None else str(manifest.steps),
                (manifest.created or "-")[:16],
                str(entry.path),
            ]
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    for emotion, problem in scan.problems.items():
        folder = scan.folders.get(emotion)
        console.print(
            f"broken: {problem}; retrain it with `{train_hint(emotion)}` or delete {folder}",
            markup=False,
            soft_wrap=True,
        )


@handle_errors
def setup() -> None:
    """Make sure the offline base model (smollm2-135m) is downloaded and converted."""
    from trainer.common.bases import ensure_default_base

    folder = ensure_default_base(
        home().ensure(), lambda line: console.print(line, markup=False, soft_wrap=True)
    )
    console.print(f"base model ready: {folder}", markup=False, soft_wrap=True)
