"""Shared pieces of the CLI shell: consoles and the one-line error contract."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from trainer.errors import PoetstudioError
from trainer.home import DataHome, resolve_home

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as a one-line error on stderr and return the Exit to raise."""
    err_console.print(f"error: {message}", markup=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn the failures a user can act on into a one-line error and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PoetstudioError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            raise fail("interrupted", code=130) from None
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise fail(f"{exc.strerror or exc}{where}") from None

    return wrapper  # type: ignore[return-value]


def bundled_dir() -> Path:
    """The bundled models folder, looked up at call time so tests can point it elsewhere."""
    import models

    return models.BUNDLED_DIR


def home() -> DataHome:
    """The data home for this invocation (`--home` is exported to the environment)."""
    return resolve_home()
