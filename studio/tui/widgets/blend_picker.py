"""The blend picker: a second emotion to mix into the one picked above, and its share of the mix."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Select, Static

from studio.core.blend import blend_choices, parse_blend
from studio.core.settings import BLEND_MIX_RANGE, BLEND_MIX_STEP, DEFAULT_BLEND_MIX
from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.stepper import Stepper
from trainer.common.emotions import NEUTRAL

# The Select's value for "no blend" (Select values must be hashable and distinct from emotions).
NO_BLEND = ""


def blend_spec(primary: str, second: str | None, mix: float) -> str:
    """The canonical spec of `primary` with `second` at share `mix` of the blend.

    `primary` alone when there is no second emotion, or when the primary is neutral (which the
    generation core never blends).
    """
    if not second or second == primary or primary == NEUTRAL:
        return primary
    return parse_blend(f"{primary}={1 - mix:g}+{second}={mix:g}").spec


def mix_text(mix: float) -> str:
    """The mix as primary/second percentages, such as `70/30`."""
    share = round(mix * 100)
    return f"{100 - share}/{share}"


class BlendPicker(Vertical):
    """A "with" Select (none, or an emotion other than the primary) and a mix stepper."""

    class Changed(Message):
        """The second emotion or the mix changed."""

        def __init__(self, second: str | None, mix: float) -> None:
            super().__init__()
            self.second = second
            self.mix = mix

    def __init__(
        self,
        primary: str,
        second: str | None = None,
        mix: float = DEFAULT_BLEND_MIX,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._primary = primary
        self._second = second if second in blend_choices() and second != primary else None
        self._mix = mix
        self._trained: set[str] | None = None  # None until the first scan: nothing marked

    @property
    def second(self) -> str | None:
        """The emotion picked to blend with (kept, but not used, while the primary is neutral)."""
        return self._second

    @property
    def mix(self) -> float:
        """The second emotion's share of the blend."""
        return self._mix

    @property
    def spec(self) -> str:
        """The canonical spec poems are written with now."""
        return blend_spec(self._primary, self._second, self._mix)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="control"):
            yield Label("with", classes="control-label")
            yield Select(
                self._options(),
                value=self._second or NO_BLEND,
                allow_blank=False,
                compact=True,
                id="blend-with",
            )
        with Horizontal(classes="control"):
            yield Label("mix", classes="control-label")
            yield Stepper(
                self._mix,
                minimum=BLEND_MIX_RANGE[0],
                maximum=BLEND_MIX_RANGE[1],
                step=BLEND_MIX_STEP,
                fmt=mix_text,
                id="blend-mix",
            )
        yield Static("", id="blend-hint")

    def on_mount(self) -> None:
        self.border_title = "Blend"
        self._mix = self.query_one(Stepper).value  # snapped onto the grid
        self._refresh()

    def set_primary(self, primary: str) -> None:
        """Follow the emotion picked above; a second emotion equal to it is dropped."""
        self._primary = primary
        dropped = self._second == primary
        if dropped:
            self._second = None
        self._reset_options()
        if dropped:
            self.post_message(self.Changed(self._second, self._mix))

    def set_models(self, trained: set[str]) -> None:
        """Mark the emotions without a model in the list."""
        self._trained = set(trained)
        self._reset_options()

    def choose(self, second: str | None) -> None:
        """Pick the emotion to blend with (None: no blend), as the Select does; the primary
        itself is not on the list, and picking it changes nothing."""
        if second != self._primary:
            self.query_one(Select).value = second or NO_BLEND

    def _reset_options(self) -> None:
        select = self.query_one(Select)
        # Rebuilding the options resets the selection: put it back without a Changed round trip.
        with self.prevent(Select.Changed):
            select.set_options(self._options())
            select.value = self._second or NO_BLEND
        self._refresh()

    def _options(self) -> list[tuple[Text, str]]:
        options = [(Text("none", style="dim"), NO_BLEND)]
        for emotion in blend_choices():
            if emotion == self._primary:
                continue
            colour = colour_of(emotion)
            # The picker's marks: a filled dot has a model, a ring is untrained.
            if self._trained is None or emotion in self._trained:
                prompt = Text.assemble(("● ", colour), (emotion, f"bold {colour}"))
            else:
                prompt = Text.assemble(("○ ", "dim"), (emotion, f"dim {colour}"))
            options.append((prompt, emotion))
        return options

    def _refresh(self) -> None:
        """Enable what applies now and say what the blend is."""
        neutral = self._primary == NEUTRAL
        self.query_one(Select).disabled = neutral
        self.query_one(Stepper).disabled = neutral or self._second is None
        hint = self.query_one("#blend-hint", Static)
        if neutral:
            hint.update(Text("neutral is never blended", style="dim italic"))
        elif self._second is None:
            hint.update("")
        else:
            share = round(self._mix * 100)
            hint.update(
                Text.assemble(
                    (f"{self._primary} {100 - share}%", colour_of(self._primary)),
                    (" + ", "dim"),
                    (f"{self._second} {share}%", colour_of(self._second)),
                )
            )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        second = str(event.value) if event.value != NO_BLEND else None
        if second != self._second:
            self._second = second
            self._refresh()
            self.post_message(self.Changed(second, self._mix))

    def on_stepper_changed(self, event: Stepper.Changed) -> None:
        event.stop()
        if event.value != self._mix:
            self._mix = event.value
            self._refresh()
            self.post_message(self.Changed(self._second, self._mix))
