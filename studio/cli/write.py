"""CLI commands: write (placeholder until implemented)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""


def open_studio() -> None:
    """Open the Textual studio."""
    raise typer.Exit(0)
