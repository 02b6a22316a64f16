"""The options every command that writes poems shares: the generation settings, the device and
the precision."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import typer

from studio.core.generation import settings

F = TypeVar("F", bound=Callable[..., Any])
PRECISION_HELP = "auto (the device's best dtype), fp32, bf16, or fp16 on a GPU"
# The device and precision options of every command that loads the emotion models.
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cuda, mps or cpu (default: the best).")
]
PrecisionOption = Annotated[
    str,
    typer.Option("--precision", help=f"What the models' weights are held in: {PRECISION_HELP}."),
]


def with_sampling_options(command: F) -> F:
    """`command` with one option per generation setting, from the settings' declarations.

    Each setting's flag, type and help come from studio/core/generation/settings.py, which also
    checks the values; the command receives them as `**sampling` (None: not given).
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    for spec in settings.declared():
        option = typer.Option(spec.flag, help=spec.help_text())
        params.append(
            inspect.Parameter(
                spec.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[spec.kind | None, option],
            )
        )
    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return cast(F, wrapper)
