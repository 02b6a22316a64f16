"""CLI commands: train, jobs (list, follow, stop), models and setup."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from studio.cli.common import console, err_console, fail, handle_errors, home
from trainer.common.emotions import MODEL_EMOTIONS
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.events import JobProgress

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


@handle_errors
def train(
    emotion: Annotated[
        str | None, typer.Option(help="Emotion to train: " + ", ".join(MODEL_EMOTIONS))
    ] = None,
    all_emotions: Annotated[
        bool, typer.Option("--all", help="Train neutral, then the 8 emotions.")
    ] = False,
    base: Annotated[
        str | None,
        typer.Option(help="Base model: smollm2-135m (offline), gpt2, a Hub id or a folder."),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="lora (default: small adapters) or full.")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: clean).")] = None,
    from_base: Annotated[
        bool,
        typer.Option("--from-base", help="Start from the raw base even if a neutral model exists."),
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="cuda, mps or cpu (default: the best present).")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="auto (default: bf16 where the hardware has it), fp32, bf16 or fp16."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Continue this emotion's newest unfinished job from its checkpoint."),
    ] = False,
    detach: Annotated[
        bool, typer.Option(help="Run in the background and print the job id.")
    ] = False,
    max_steps: Annotated[
        int | None, typer.Option(help="Optimizer steps (replaces --epochs).")
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the data (default 4).")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default 3e-4 lora, 5e-5 full).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Blocks per micro-batch (default 8).")
    ] = None,
    block_size: Annotated[int | None, typer.Option(help="Tokens per block (default 128).")] = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Micro-batches per optimizer step (default 1).")
    ] = None,
    warmup: Annotated[
        float | None, typer.Option(help="Share of steps spent warming up (default 0.05).")
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay (default 0).")
    ] = None,
    lora_rank: Annotated[int | None, typer.Option(help="LoRA rank (default 16).")] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Evaluate every N steps (default 50).")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps (default 50).")
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Evaluations without improvement before stopping (default 3; 0 never)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 1234).")] = None,
    max_words: Annotated[
        int | None, typer.Option(help="Longest poem used, in words (default 100).")
    ] = None,
) -> None:
    """Fine-tune an emotion model, showing live progress (or in the background with --detach)."""
    from trainer.jobs.control import start_job

    options = {
        "--base": base, "--method": method, "--dataset": dataset, "--device": device,
        "--precision": precision,
        "--max-steps": max_steps, "--epochs": epochs, "--lr": lr, "--batch-size": batch_size,
        "--block-size": block_size, "--grad-accum": grad_accum, "--warmup": warmup,
        "--weight-decay": weight_decay, "--lora-rank": lora_rank, "--eval-every": eval_every,
        "--checkpoint-every": checkpoint_every, "--patience": patience, "--seed": seed,
        "--max-words": max_words,
    }  # fmt: skip
    args = [
        item for flag, value in options.items() if value is not None for item in (flag, str(value))
    ]
    if from_base:
        args.append("--from-base")
    if resume:
        args.append("--resume")
    data = home()
    if all_emotions:
        if emotion:
            raise PoetstudioError("give either --emotion or --all, not both")
        from trainer.jobs.chain import preflight_chain

        preflight_chain(data, args)
        if detach:
            from trainer.jobs.control import start_chain

            pid = start_chain(data, args)
            console.print(
                f"training all nine models in the background (pid {pid}); "
                "`poetstudio jobs` shows each job as it starts",
                markup=False,
                soft_wrap=True,
            )
            return
        from trainer.jobs.control import chain_args

        for name in MODEL_EMOTIONS:
            if not _run_foreground(data, start_job(data, chain_args(data, name, args))):
                raise typer.Exit(1)
        return
    if not emotion:
        raise PoetstudioError("name the emotion to train, e.g. --emotion trust (or use --all)")
    job_id = start_job(data, ["--emotion", emotion, *args])
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
    raise fail(progress.message or f"job {job_id} ended with status {status}")


@jobs_app.callback()
@handle_errors
def jobs(ctx: typer.Context) -> None:
    """List training jobs with status, progress and ETA."""
    if ctx.invoked_subcommand is not None:
        return
    from trainer.jobs.control import list_jobs
    from trainer.jobs.events import format_duration

    infos = list_jobs(home())
    if not infos:
        console.print(
            "no training jobs yet; start one with `poetstudio train --emotion trust`", markup=False
        )
        return
    table = Table(box=None, header_style="bold")
    # The id is what every other command takes, so it is never cut: the other columns fold.
    table.add_column("job", no_wrap=True, min_width=max(len(info.id) for info in infos))
    for column in ("emotion", "state", "step", "loss", "val ppl", "tok/s", "ETA"):
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
    if progress.status in ("done", "stopped", "interrupted", "error"):
        _report(progress, job_id)


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
    table = Table(box=None, header_style="bold")
    for column in ("emotion", "source", "method", "base", "val ppl", "steps", "created", "path"):
        table.add_column(column, no_wrap=column in ("emotion", "source", "method"))
    for entry in entries:
        source = entry.source + (" (hidden by user)" if entry.hidden else "")
        if entry.info is None:
            cells = [entry.emotion, source, "broken", "-", "-", "-", "-", str(entry.path)]
        else:
            manifest = entry.info.manifest
            ppl = (manifest.get("metrics") or {}).get("best_val_ppl")
            cells = [
                entry.emotion,
                source,
                entry.info.method,
                entry.info.base_spec,
                "-" if ppl is None else f"{ppl:.2f}",
                str(manifest.get("steps", "-")),
                str(manifest.get("created", "-"))[:16],
                str(entry.path),
            ]
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    scan = scan_entries(entries)
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
