"""A one-line number control that steps through a fixed grid and can never leave its range.

It reads `− 1.25 ━━━╸── +`: the value, a gauge of where it sits in the range, and two buttons.
Keys while focused: left or -, right or + (or =), home and end; a click on − or + steps too.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

MINUS = "−"
PLUS = "+"


class Stepper(Widget, can_focus=True):
    """A value from `minimum` to `maximum` in steps of `step`; changes post `Stepper.Changed`."""

    COMPONENT_CLASSES = {"stepper--button", "stepper--value", "stepper--bar", "stepper--track"}

    DEFAULT_CSS = """
    Stepper {
        width: 1fr;
        height: 1;
    }
    Stepper > .stepper--button {
        color: $accent;
        text-style: bold;
    }
    Stepper > .stepper--value {
        text-style: bold;
    }
    Stepper > .stepper--bar {
        color: $accent;
    }
    Stepper > .stepper--track {
        color: $panel-lighten-2;
    }
    Stepper:focus > .stepper--value {
        background: $accent;
        color: $text;
    }
    Stepper:disabled {
        opacity: 50%;
    }
    """

    BINDINGS = [
        Binding("left,minus", "step(-1)", "Less", key_display="←"),
        Binding("right,plus,equals_sign", "step(1)", "More", key_display="→"),
        Binding("home", "limit(-1)", "Lowest", show=False),
        Binding("end", "limit(1)", "Highest", show=False),
    ]

    value: reactive[float] = reactive(0.0)

    class Changed(Message):
        """The value changed (by a key, a click or code)."""

        def __init__(self, stepper: Stepper, value: float) -> None:
            super().__init__()
            self.stepper = stepper
            self.value = value

        @property
        def control(self) -> Stepper:
            """The Stepper that changed."""
            return self.stepper

    def __init__(
        self,
        value: float,
        *,
        minimum: float,
        maximum: float,
        step: float,
        fmt: Callable[[float], str] = "{:g}".format,
        id: str | None = None,
        disabled: bool = False,
    ) -> None:
        """`fmt` turns a value into the text shown; every value on the grid should fit it."""
        super().__init__(id=id, disabled=disabled)
        self.minimum = minimum
        self.maximum = maximum
        self.step_size = step
        self.fmt = fmt
        count = round((maximum - minimum) / step)
        self._value_width = max(len(fmt(self._snap(minimum + i * step))) for i in range(count + 1))
        # Set without the watcher: the initial value is not a change.
        self.set_reactive(Stepper.value, self._snap(value))

    def _snap(self, value: float) -> float:
        """`value` clamped to the range and moved to the nearest grid point."""
        if value != value:  # NaN: the lowest value, the safe end of every control here
            value = self.minimum
        clamped = min(self.maximum, max(self.minimum, value))
        steps = round((clamped - self.minimum) / self.step_size)
        # Rounded so that 0.1-steps land on 0.3, not 0.30000000000000004.
        return round(min(self.maximum, self.minimum + steps * self.step_size), 9)

    def validate_value(self, value: float) -> float:
        """Every value set, from any source, lands on the grid inside the range."""
        return self._snap(float(value))

    def watch_value(self, value: float) -> None:
        """Tell the parent the value changed."""
        self.post_message(self.Changed(self, value))

    def action_step(self, steps: int) -> None:
        """Move `steps` grid points up (positive) or down; the ends hold."""
        self.value = self.value + steps * self.step_size

    def action_limit(self, direction: int) -> None:
        """Jump to the top (positive) or the bottom of the range."""
        self.value = self.maximum if direction > 0 else self.minimum

    def on_click(self, event: events.Click) -> None:
        """A click on − or + steps; a click elsewhere only focuses."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.x <= 1:
            self.action_step(-1)
        elif offset.x >= self.content_size.width - 2:
            self.action_step(1)

    def render(self) -> Text:
        """`− value gauge +`, the gauge filling whatever width is left."""
        button = self.get_component_rich_style("stepper--button")
        text = Text.assemble((MINUS, button), " ")
        shown = self.fmt(self.value).rjust(self._value_width)
        text.append(shown, self.get_component_rich_style("stepper--value"))
        gauge = self.content_size.width - len(text) - 3
        if gauge >= 3:
            text.append(" ")
            text.append_text(self._gauge(gauge))
        text.append(" ")
        text.append(PLUS, button)
        return text

    def _gauge(self, width: int) -> Text:
        """A bar of `width` cells filled in half-cell steps up to where the value sits."""
        span = self.maximum - self.minimum
        halves = round(2 * width * (self.value - self.minimum) / span) if span else 0
        full, half = divmod(halves, 2)
        bar = "━" * full + ("╸" if half else "")
        track = "─" * (width - len(bar))
        return Text.assemble(
            (bar, self.get_component_rich_style("stepper--bar")),
            (track, self.get_component_rich_style("stepper--track")),
        )
