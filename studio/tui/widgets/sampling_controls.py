"""Sampling controls: one per generation setting declared with a studio control
(studio/core/generation/settings.py): numbers typed in place and checked as you type, stepped
values (the guidance strength) on a control that cannot leave its range, a choice among names
(the form's preset) and text read by its grammar (the rhyme scheme, the syllables).

A value is applied only when the settings as a whole are valid (a scheme of 4 lines and 3
syllable counts is not); otherwise Invalid carries the one-line reason and nothing changes."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select

from studio.core.generation import settings
from studio.tui.widgets.stepper import Stepper
from trainer.common.errors import PoetstudioError


def strength_text(strength: float) -> str:
    """The strength as the control shows it: 0 is guidance switched off."""
    return "off" if strength == 0 else f"{strength:.2f}"


# How a stepped setting's value reads on its control, where "{:g}" would not do.
_STEPPER_TEXT = {"strength": strength_text}


class SamplingControls(Vertical):
    """An input or a stepper per controlled setting; a valid change posts Changed, an invalid
    typed value is marked and ignored."""

    class Changed(Message):
        """A sampling value changed to a new valid value."""

        def __init__(self, values: dict[str, Any]) -> None:
            super().__init__()
            self.values = values

    class Invalid(Message):
        """A control holds a value that is not applied; `error` says why in one line."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    def __init__(self, values: dict[str, Any], *, id: str | None = None) -> None:
        """`values` holds a value for each controlled setting, by name."""
        super().__init__(id=id)
        self._values = dict(values)
        self._specs = {spec.name: spec for spec in settings.controlled()}

    @property
    def values(self) -> dict[str, Any]:
        """The last valid value of each control."""
        return dict(self._values)

    def compose(self) -> ComposeResult:
        for spec in self._specs.values():
            with Horizontal(classes="control"):
                yield Label(spec.label, classes="control-label")
                if spec.control == "stepper":
                    yield Stepper(
                        self._values[spec.name],
                        minimum=spec.studio[0],
                        maximum=spec.studio[1],
                        step=spec.step,
                        fmt=_STEPPER_TEXT.get(spec.name, "{:g}".format),
                        id=f"control-{spec.name}",
                    )
                elif spec.control == "select":
                    yield Select(
                        [(choice, choice) for choice in spec.choices],
                        value=self._values[spec.name],
                        allow_blank=False,
                        compact=True,
                        id=f"control-{spec.name}",
                    )
                else:
                    value = self._values[spec.name]
                    yield Input(
                        "" if value is None else str(value),
                        placeholder="the form's" if spec.control == "text" else "",
                        id=f"control-{spec.name}",
                        compact=True,
                    )

    def on_mount(self) -> None:
        self.border_title = "Sampling"
        # A stepper snaps what it was given (settings may hold 1.1): that is the value in force.
        for stepper in self.query(Stepper):
            self._values[(stepper.id or "").removeprefix("control-")] = stepper.value

    def on_stepper_changed(self, event: Stepper.Changed) -> None:
        event.stop()
        key = (event.stepper.id or "").removeprefix("control-")
        if key in self._specs and event.value != self._values.get(key):
            self._values[key] = event.value
            self.post_message(self.Changed(self.values))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        spec = self._specs.get((event.select.id or "").removeprefix("control-"))
        if spec is not None and isinstance(event.value, str):
            self._apply(spec, event.value, event.select)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        spec = self._specs.get((event.input.id or "").removeprefix("control-"))
        if spec is None:
            return
        if spec.control == "text":
            text = event.value.strip()
            if not text:
                self._apply(spec, None, event.input)
                return
            try:
                spec.check(text)
            except PoetstudioError as error:
                self._refuse(event.input, str(error))
                return
            self._apply(spec, text, event.input)
            return
        value = spec.parse(event.value, studio=True)
        if value is None:
            event.input.add_class("invalid")
            return
        self._apply(spec, value, event.input)

    def _apply(self, spec: settings.Setting, value: Any, control: Any) -> None:
        """Take `value` if the settings with it are valid together, else mark the control."""
        values = {**self._values, spec.name: value}
        try:
            settings.make_params(values).poem_form()
        except PoetstudioError as error:
            self._refuse(control, str(error))
            return
        control.remove_class("invalid")
        if value != self._values.get(spec.name):
            self._values[spec.name] = value
            self.post_message(self.Changed(self.values))

    def _refuse(self, control: Any, error: str) -> None:
        control.add_class("invalid")
        self.post_message(self.Invalid(error))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in a control is not "generate": that belongs to the first-line input only.
        event.stop()
