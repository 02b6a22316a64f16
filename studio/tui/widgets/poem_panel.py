"""The poem panel: the poem as it streams in, its title, and where it stands in the history.

A poem with a form (not free verse) shows a dim gutter before each line: its syllable count and
rhyme letter, and a red `!` on a finished line that misses its syllable target or its rhyme
(trainer/evaluation/formscore.py measures both, as eval does). The line still being written is
counted but not marked.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from studio.core.history import SessionPoem
from studio.core.settings import strength_label
from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.literal import literal, visible
from trainer.common.errors import PoetstudioError
from trainer.common.form import Form, parse_form
from trainer.evaluation.formscore import line_marks

PLACEHOLDER = "Pick an emotion, type a first line (or nothing) and press Enter."


class PoemPanel(VerticalScroll):
    """Shows one SessionPoem; `append` adds streamed text without redrawing the rest."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = ""
        self._colour = colour_of("neutral")
        self._form: Form | None = None
        self._finished = False

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
        self._form = poem_form(poem.sampling)
        self._finished = poem.finished
        self._colour = colour_of(poem.emotion)
        self.border_title = f"Poem {position}/{total} · {poem.emotion}"
        facts = [f"seed {poem.seed}", strength_label(poem.strength)]
        if poem.saved_to:
            facts.append("saved")
        self.border_subtitle = " · ".join(facts)
        title = poem.title if poem.finished else "…"
        self.query_one("#poem-title", Static).update(literal(title, style=f"bold {self._colour}"))
        self.query_one("#poem-body", Static).update(self._body())
        self.query_one("#poem-notice", Static).update(literal(poem.notice, style="italic yellow"))
        self.scroll_end(animate=False)

    def show_notice(self, notice: str) -> None:
        """Show no poem, only `notice` (for example: there are no models yet)."""
        self._text = ""
        self._form = None
        self.border_title = "Poem"
        self.border_subtitle = ""
        self.query_one("#poem-title", Static).update("")
        self.query_one("#poem-body", Static).update(Text(PLACEHOLDER, style="dim italic"))
        self.query_one("#poem-notice", Static).update(literal(notice, style="italic yellow"))

    def append(self, chunk: str) -> None:
        """Add streamed text to the poem on screen."""
        self._text += chunk
        self.query_one("#poem-body", Static).update(self._body())
        self.scroll_end(animate=False)

    def _body(self) -> Text:
        """The poem, literally, with the form's gutter before each line when it has a form."""
        if self._form is None:
            return literal(self._text)
        rows = self._text.split("\n")
        verses = [row for row in rows if row.strip()]
        marks = iter(line_marks(verses, self._form))
        # The last line is still being written until a newline (or the end) closes it.
        open_line = len(rows) - 1 if not self._finished else None
        body = Text()
        for number, row in enumerate(rows):
            if number:
                body.append("\n")
            if not row.strip():
                body.append(visible(row))
                continue
            mark = next(marks)
            body.append(f"{mark.syllables:>2} {mark.rhyme or ' '}", style="dim")
            missed = mark.missed and number != open_line
            body.append(" ! " if missed else "   ", style="bold red")
            body.append(visible(row))
        return body


def poem_form(sampling: dict[str, object]) -> Form | None:
    """The form a poem's sampling settings name, or None for free verse (or a form unreadable
    from an old record, which is then shown as free verse)."""
    values = {key: sampling.get(key) for key in ("rhyme", "syllables", "meter")}
    try:
        form = parse_form(
            str(sampling.get("form", "free")),
            **{key: str(value) if value is not None else None for key, value in values.items()},
        )
    except PoetstudioError:
        return None
    return None if form.is_free else form
