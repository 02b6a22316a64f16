"""Steering the next line: a word it must use, a word it must rhyme with, a topic word, and how
many candidate lines to write at once.

The words are read by co-writing's own checks (studio/core/cowrite/words.py) when candidates are
asked for; a bad word marks its field and the one-line reason is shown. Enter in a field asks for
new candidates with the words as they are now.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from studio.core.cowrite.words import check_word
from studio.core.cowrite.writer import MAX_CANDIDATES
from studio.core.generation.steer import Steer
from studio.tui.widgets.stepper import Stepper
from trainer.common.errors import PoetstudioError

# The fields: (Steer field, label, placeholder).
FIELDS = (
    ("use", "use", "a word"),
    ("rhyme_with", "rhyme", "a word"),
    ("topic", "topic", "a word"),
)


class SteerBox(Vertical):
    """The steering fields and the candidate count."""

    class CountChanged(Message):
        """The number of candidate lines changed to `count`."""

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class Submitted(Message):
        """Enter in a steering field: new candidates, steered by the fields now."""

    def __init__(self, count: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._count = count

    @property
    def count(self) -> int:
        """How many candidate lines to write at once."""
        return self._count

    def compose(self) -> ComposeResult:
        with Horizontal(classes="control"):
            for name, label, placeholder in FIELDS:
                yield Label(label, classes="steer-label")
                yield Input(placeholder=placeholder, id=f"steer-{name}", compact=True)
        with Horizontal(classes="control"):
            yield Label("candidates", classes="steer-label")
            yield Stepper(self._count, minimum=1, maximum=MAX_CANDIDATES, step=1, id="steer-count")

    def on_mount(self) -> None:
        self.border_title = "Steer the next line"

    def steer(self) -> Steer:
        """The steering the fields ask for; a one-line PoetstudioError naming a bad field (which
        is marked)."""
        words: dict[str, str | None] = {}
        for name, label, _ in FIELDS:
            field = self.query_one(f"#steer-{name}", Input)
            text = field.value.strip()
            try:
                words[name] = check_word(label, text) if text else None
            except PoetstudioError:
                field.add_class("invalid")
                raise
            field.remove_class("invalid")
        return Steer(**words)

    def set_word(self, name: str, word: str) -> None:
        """Put `word` in the field of Steer field `name` (use, rhyme_with or topic)."""
        self.query_one(f"#steer-{name}", Input).value = word

    def clear_line_words(self) -> None:
        """Empty the fields that ask of one line only (use, rhyme); the topic stays."""
        for name in ("use", "rhyme_with"):
            self.query_one(f"#steer-{name}", Input).value = ""

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        event.input.remove_class("invalid")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())

    def on_stepper_changed(self, event: Stepper.Changed) -> None:
        event.stop()
        count = int(event.value)
        if count != self._count:
            self._count = count
            self.post_message(self.CountChanged(count))
