"""The poem panel: the poem as it streams in, its title, and where it stands in the history."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from studio.core.history import SessionPoem
from studio.core.settings import strength_label
from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.literal import literal

PLACEHOLDER = "Pick an emotion, type a first line (or nothing) and press Enter."


class PoemPanel(VerticalScroll):
    """Shows one SessionPoem; `append` adds streamed text without redrawing the rest."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = ""
        self._colour = colour_of("neutral")

    def compose(self) -> ComposeResult:
        yield Static("", id="poem-title")
        yield Static(Text(PLACEHOLDER, style="dim italic"), id="poem-body")
        yield Static("", id="poem-notice")

    def on_mount(self) -> None:
        self.border_title = "Poem"

    @property
    def text(self) -> str:
        """The poem text on screen, exactly as generated."""
        return self._text

    def show(self, poem: SessionPoem, position: int, total: int) -> None:
        """Show `poem`, number `position` (1-based) of `total` in this session, with its emotion
        (or blend spec), seed and guidance strength."""
        self._text = poem.text
        self._colour = colour_of(poem.emotion)
        self.border_title = f"Poem {position}/{total} · {poem.emotion}"
        facts = [f"seed {poem.seed}", strength_label(poem.strength)]
        if poem.saved_to:
            facts.append("saved")
        self.border_subtitle = " · ".join(facts)
        title = poem.title if poem.finished else "…"
        self.query_one("#poem-title", Static).update(literal(title, style=f"bold {self._colour}"))
        self.query_one("#poem-body", Static).update(literal(self._text))
        self.query_one("#poem-notice", Static).update(literal(poem.notice, style="italic yellow"))
        self.scroll_end(animate=False)

    def show_notice(self, notice: str) -> None:
        """Show no poem, only `notice` (for example: there are no models yet)."""
        self._text = ""
        self.border_title = "Poem"
        self.border_subtitle = ""
        self.query_one("#poem-title", Static).update("")
        self.query_one("#poem-body", Static).update(Text(PLACEHOLDER, style="dim italic"))
        self.query_one("#poem-notice", Static).update(literal(notice, style="italic yellow"))

    def append(self, chunk: str) -> None:
        """Add streamed text to the poem on screen."""
        self._text += chunk
        self.query_one("#poem-body", Static).update(literal(self._text))
        self.scroll_end(animate=False)
