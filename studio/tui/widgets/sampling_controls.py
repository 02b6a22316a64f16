"""Sampling controls: temperature, top-p and max lines typed in place and checked as you type, and
the guidance strength, stepped with a control that cannot leave its range."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from studio.core.settings import (
    STRENGTH_RANGE,
    STRENGTH_STEP,
    parse_max_lines,
    parse_temperature,
    parse_top_p,
)
from studio.tui.widgets.stepper import Stepper

# (input id, label, parser)
FIELDS: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
    ("temperature", "temperature", parse_temperature),
    ("top_p", "top-p", parse_top_p),
    ("max_lines", "max lines", parse_max_lines),
)


def strength_text(strength: float) -> str:
    """The strength as the control shows it: 0 is guidance switched off."""
    return "off" if strength == 0 else f"{strength:.2f}"


class SamplingControls(Vertical):
    """Three small inputs and the strength stepper; a valid change posts Changed, an invalid
    typed value is marked and ignored."""

    class Changed(Message):
        """A sampling value changed to a new valid value."""

        def __init__(self, values: dict[str, Any]) -> None:
            super().__init__()
            self.values = values

    def __init__(self, values: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._values = dict(values)

    @property
    def values(self) -> dict[str, Any]:
        """The last valid value of each control."""
        return dict(self._values)

    def compose(self) -> ComposeResult:
        for key, label, _ in FIELDS:
            with Horizontal(classes="control"):
                yield Label(label, classes="control-label")
                yield Input(str(self._values[key]), id=f"control-{key}", compact=True)
        with Horizontal(classes="control"):
            yield Label("strength", classes="control-label")
            yield Stepper(
                self._values["strength"],
                minimum=STRENGTH_RANGE[0],
                maximum=STRENGTH_RANGE[1],
                step=STRENGTH_STEP,
                fmt=strength_text,
                id="control-strength",
            )

    def on_mount(self) -> None:
        self.border_title = "Sampling"
        # The stepper snaps what it was given (settings may hold 1.1): that is the value in force.
        self._values["strength"] = self.query_one(Stepper).value

    def on_stepper_changed(self, event: Stepper.Changed) -> None:
        event.stop()
        if event.value != self._values.get("strength"):
            self._values["strength"] = event.value
            self.post_message(self.Changed(self.values))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        key = (event.input.id or "").removeprefix("control-")
        parser = {k: p for k, _, p in FIELDS}.get(key)
        if parser is None:
            return
        value = parser(event.value)
        event.input.set_class(value is None, "invalid")
        if value is not None and value != self._values.get(key):
            self._values[key] = value
            self.post_message(self.Changed(self.values))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in a control is not "generate": that belongs to the first-line input only.
        event.stop()
