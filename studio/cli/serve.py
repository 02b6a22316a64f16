"""CLI command: `serve`, the studio in a browser (textual-serve, the optional `web` extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from studio.cli.common import console, err_console, handle_errors
from studio.cli.sampling_options import DeviceOption, PrecisionOption
from studio.core.serving import DEFAULT_HOST, DEFAULT_MAX_SESSIONS, DEFAULT_PORT, WEB_HINT
from trainer.common.errors import PoetstudioError
from trainer.common.home import ENV_VAR, resolve_home


def register(app: typer.Typer) -> None:
    """Add this module's command to the root app."""
    app.command(name="serve")(handle_errors(serve))


def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but loopback exposes the studio."),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")
    ] = DEFAULT_PORT,
    home: Annotated[
        Path | None,
        typer.Option("--home", help=f"Data home (default: ${ENV_VAR} or the user data dir)."),
    ] = None,
    device: DeviceOption = None,
    precision: PrecisionOption = "auto",
    token: Annotated[
        str | None,
        typer.Option(help="The token a browser must bring (default: a random one, printed)."),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option(
            "--max-sessions",
            help="Browser tabs served at once; each runs its own studio and model.",
        ),
    ] = DEFAULT_MAX_SESSIONS,
) -> None:
    """Serve the studio in a browser: one studio per tab, behind a token, local by default."""
    from studio.core.serving import (
        check_host,
        check_max_sessions,
        check_token,
        exposure_warning,
        new_token,
        serve_url,
        studio_command,
        web_available,
    )
    from trainer.common.device import pick_device
    from trainer.common.precision import check_precision

    host = check_host(host)
    sessions = check_max_sessions(max_sessions)
    if not web_available():
        raise PoetstudioError(f"`poetstudio serve` needs textual-serve: `{WEB_HINT}` adds it")
    from studio.core.webserver import StudioServer

    if home is not None:
        # Exported so that the studios it starts, and their training jobs, use the same home.
        os.environ[ENV_VAR] = str(home.expanduser().resolve())
    data = resolve_home().ensure()
    if device is not None:
        device = pick_device(device)  # a bad name fails here, not in every tab's studio
    secret = new_token() if token is None else check_token(token)
    command = studio_command(data.root, device, check_precision(precision.strip().lower()))
    server = StudioServer(command, host, port, secret, sessions, title="poetstudio")

    def listening(bound: int) -> None:
        warning = exposure_warning(host, bound, data.root)
        if warning is not None:
            err_console.print(
                f"warning: {warning}",
                markup=False,
                soft_wrap=True,
                style="yellow",
            )
        console.print(
            f"Serving the studio at {serve_url(host, bound, secret)}", markup=False, soft_wrap=True
        )
        tabs = "1 browser tab" if sessions == 1 else f"{sessions} browser tabs"
        console.print(
            f"data home {data.root}; at most {tabs} at once, each with its own studio and model."
            " Press Ctrl+C to stop.",
            markup=False,
            soft_wrap=True,
        )

    server.run(listening)
