"""The emotion picker: the nine model emotions in their colours; untrained, broken ones marked."""

from __future__ import annotations

from collections.abc import Collection

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.literal import literal
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL


class EmotionPicker(Vertical):
    """A list of the nine emotions; moving the cursor picks one."""

    class Changed(Message):
        """The picked emotion changed."""

        def __init__(self, emotion: str) -> None:
            super().__init__()
            self.emotion = emotion

    def __init__(self, emotion: str = NEUTRAL, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._emotion = emotion if emotion in MODEL_EMOTIONS else NEUTRAL
        # Until the first scan every emotion counts as trained: no false "untrained" flash.
        self._trained: set[str] = set(MODEL_EMOTIONS)
        self._hints: dict[str, str] = {}
        self._broken: set[str] = set()

    @property
    def emotion(self) -> str:
        """The emotion picked now."""
        return self._emotion

    def compose(self) -> ComposeResult:
        options = [Option(self._prompt(e), id=e) for e in MODEL_EMOTIONS]
        yield OptionList(*options, id="emotion-list")
        yield Static("", id="picker-hint")

    def on_mount(self) -> None:
        self.border_title = "Emotion"
        self.query_one(OptionList).highlighted = MODEL_EMOTIONS.index(self._emotion)

    def set_models(
        self, trained: set[str], hints: dict[str, str], broken: Collection[str] = ()
    ) -> None:
        """Show which emotions have a model; `hints` maps each untrained one to what to do.

        `broken` are those whose model folder exists but cannot be used (the hint says why).
        """
        self._trained = set(trained)
        self._hints = dict(hints)
        self._broken = set(broken) - self._trained
        options = self.query_one(OptionList)
        for emotion in MODEL_EMOTIONS:
            options.replace_option_prompt(emotion, self._prompt(emotion))
        self._show_hint()

    def is_trained(self, emotion: str) -> bool:
        """Whether `emotion` has a usable model."""
        return emotion in self._trained

    def pick(self, emotion: str) -> None:
        """Move the cursor to `emotion` (which posts Changed)."""
        self.query_one(OptionList).highlighted = MODEL_EMOTIONS.index(emotion)

    def step(self, delta: int) -> None:
        """Pick the emotion `delta` places down the list, wrapping around."""
        # From the highlight, not from the last Changed: two quick presses must move two places.
        highlighted = self.query_one(OptionList).highlighted
        current = MODEL_EMOTIONS.index(self._emotion) if highlighted is None else highlighted
        index = (current + delta) % len(MODEL_EMOTIONS)
        self.pick(MODEL_EMOTIONS[index])

    def _prompt(self, emotion: str) -> Text:
        colour = colour_of(emotion)
        if emotion in self._trained:
            return Text.assemble(("● ", colour), (emotion, f"bold {colour}"))
        if emotion in self._broken:
            return Text.assemble(("✗ ", "red"), (emotion, f"dim {colour}"), ("  broken", "red"))
        return Text.assemble(
            ("○ ", "dim"), (emotion, f"dim {colour}"), ("  untrained", "dim italic")
        )

    def _show_hint(self) -> None:
        hint = self.query_one("#picker-hint", Static)
        if self._emotion in self._trained:
            hint.update("")
        else:
            hint.update(literal(self._hints.get(self._emotion, ""), style="italic"))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        emotion = event.option_id
        if emotion is None or emotion == self._emotion:
            self._show_hint()
            return
        self._emotion = emotion
        self._show_hint()
        self.post_message(self.Changed(emotion))
