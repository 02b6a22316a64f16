"""Shared pieces of the CLI shell: consoles and the one-line error contract."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome, resolve_home

try:  # typer 0.2x carries its own copy of click, whose exceptions are not click's
    from typer._click import exceptions as click_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

# No markup and no :emoji: codes: every string printed is shown as it is, paths and poems included.
# Rich styling goes through Text and style= instead.
console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

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


def usage_error_line(exc: click_errors.ClickException) -> str:
    """A usage error as the README's one line: the message, and where the help is."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click_errors.UsageError) and ctx is not None:
        message += f" (see `{ctx.command_path} --help`)"
    return message


class OneLineErrors(TyperGroup):
    """The root command group: usage errors become `error: ...` on one line, never a box."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; with `standalone_mode`, exit with its status as click does."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # a group called bare prints its help, as it asks to
            result = exc.exit_code
        except click_errors.ClickException as exc:
            fail(usage_error_line(exc))
            result = exc.exit_code
        except typer.Abort:
            fail("interrupted")
            result = 130
        # A command's own return value is not an exit status; typer.Exit arrives as an int.
        code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        if standalone_mode:
            sys.exit(code)
        return code
