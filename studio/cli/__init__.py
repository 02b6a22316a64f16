"""The `poetstudio` command: a thin Typer shell over the trainer and studio cores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from studio.cli import corpus, evaluate, serve, suggest, train, write
from studio.cli.common import OneLineErrors, console, handle_errors
from studio.cli.sampling_options import PRECISION_HELP
from trainer.common.home import ENV_VAR, resolve_home

app = typer.Typer(
    cls=OneLineErrors,
    name="poetstudio",
    help="A terminal poetry studio: pick an emotion, seed a line, watch a poem stream in.",
    no_args_is_help=False,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
@handle_errors
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help=f"Data home (default: ${ENV_VAR} or the user data dir)."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="For the studio: cuda, mps or cpu (default: the best)."),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help=f"For the studio's models: {PRECISION_HELP}.")
    ] = "auto",
) -> None:
    """Open the studio when no command is given."""
    if home is not None:
        # Exported so that background training processes inherit the same home.
        os.environ[ENV_VAR] = str(home.expanduser().resolve())
    if ctx.invoked_subcommand is None:
        from trainer.common.precision import check_precision

        write.open_studio(device, check_precision(precision.strip().lower()))


@app.command()
@handle_errors
def paths() -> None:
    """Print where poetstudio keeps its corpus, datasets, models, jobs and poems."""
    from models import BUNDLED_DIR

    data = resolve_home()
    rows = [
        ("home", data.root),
        ("corpus", data.corpus),
        ("datasets", data.datasets),
        ("bases", data.bases),
        ("models", data.models),
        ("bundled models", BUNDLED_DIR),
        ("jobs", data.jobs),
        ("evaluations", data.evals),
        ("poems", data.poems_file),
        ("settings", data.settings_file),
    ]
    width = max(len(name) for name, _ in rows)
    for name, path in rows:
        console.print(f"{name:<{width}}  {path}", markup=False)


corpus.register(app)
train.register(app)
evaluate.register(app)
write.register(app)
suggest.register(app)
serve.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
