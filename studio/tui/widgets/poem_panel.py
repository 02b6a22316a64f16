"""The poem panel: the poem as it streams in, its title, and where it stands in the history.

A poem with a form (not free verse) shows a dim gutter before each line: its syllable count and
rhyme letter, and a red `!` on a finished line that misses its syllable target or its rhyme
(trainer/evaluation/formscore.py measures both, as eval does). The line still being written is
counted but not marked.

Line by line (co-writing), the panel shows the draft and, after it, the line being written: the
highlighted candidate in dim, its gutter giving the targets it is written to (syllables, rhyme
letter). There the panel takes the focus: up and down pick a line, w (or Enter) asks to rewrite it.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from studio.core.history import SessionPoem
from studio.core.settings import strength_label
from studio.tui.widgets.colours import colour_of
from studio.tui.widgets.literal import literal, visible
from trainer.common.errors import PoetstudioError
from trainer.common.form import Form, LineTarget, parse_form
from trainer.evaluation.formscore import line_marks

PLACEHOLDER = "Pick an emotion, type a first line (or nothing) and press Enter."
DRAFT_PLACEHOLDER = "Type a first line and press Enter, or press Enter for candidate lines."


class PoemPanel(VerticalScroll):
    """Shows one SessionPoem; `append` adds streamed text without redrawing the rest."""

    can_focus = False

    BINDINGS = [
        Binding("up", "select_line(-1)", "Line above", show=False),
        Binding("down", "select_line(1)", "Line below", show=False),
        Binding("w,enter", "rewrite", "Rewrite line", key_display="w"),
    ]

    class RewriteLine(Message):
        """Line by line: rewrite line `number` (1-based, stanza breaks not counted)."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = ""
        self._colour = colour_of("neutral")
        self._form: Form | None = None
        self._finished = False
        # Line by line: the line being written (None: whole poems), and the line picked.
        self._pending: str | None = None
        self._selected: int | None = None

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

    @property
    def selected(self) -> int | None:
        """The line picked to rewrite (1-based), line by line; None when none is."""
        return self._selected

    def set_line_by_line(self, on: bool) -> None:
        """Line by line the panel takes the focus to pick a line; whole poems it never does."""
        self.can_focus = on
        self._pending = None
        self._selected = None

    def show_draft(
        self,
        text: str,
        emotion: str,
        sampling: dict[str, object],
        pending: str | None,
        notice: str = "",
    ) -> None:
        """Show a co-written draft (`text`: its lines so far) and, after it, `pending`: the line
        being written (the highlighted candidate as it stands, "" before it has words; None when
        the line written is one of the poem's, picked to rewrite)."""
        self._text = text
        self._form = poem_form(sampling)
        self._finished = True
        self._pending = pending
        self._colour = colour_of(emotion)
        count = len(self._verses())
        if self._selected is not None and not 1 <= self._selected <= count:
            self._selected = None
        self.border_title = f"Line by line · {emotion}"
        self.border_subtitle = f"{count} line{'s' if count != 1 else ''}"
        self.query_one("#poem-title", Static).update("")
        body = self._body() if text or pending else Text(DRAFT_PLACEHOLDER, style="dim italic")
        self.query_one("#poem-body", Static).update(body)
        self.query_one("#poem-notice", Static).update(literal(notice, style="italic yellow"))
        if self._selected is None:
            self.scroll_end(animate=False)

    def _verses(self) -> list[str]:
        return [row for row in self._text.split("\n") if row.strip()]

    def action_select_line(self, delta: int) -> None:
        """Pick the line above or below the one picked (none picked: up picks the last line,
        down the first)."""
        count = len(self._verses())
        if not count:
            return
        start = self._selected if self._selected is not None else (0 if delta > 0 else count + 1)
        self._selected = max(1, min(count, start + delta))
        self.query_one("#poem-body", Static).update(self._body())

    def action_rewrite(self) -> None:
        """Ask to rewrite the picked line (the last one when none is picked)."""
        count = len(self._verses())
        if count:
            self.post_message(self.RewriteLine(self._selected or count))

    def show(self, poem: SessionPoem, position: int, total: int) -> None:
        """Show `poem`, number `position` (1-based) of `total` in this session, with its emotion
        (or blend spec), seed and guidance strength."""
        self._text = poem.text
        self._form = poem_form(poem.sampling)
        self._finished = poem.finished
        self._pending = None
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
        self._pending = None
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
        """The poem, literally, with the form's gutter before each line when it has a form, then
        the line being written (line by line)."""
        body = self._verse_rows()
        if self._pending is not None:
            self._append_pending(body)
        return body

    def _verse_rows(self) -> Text:
        rows = self._text.split("\n") if self._text else []
        verses = [row for row in rows if row.strip()]
        marks = iter(line_marks(verses, self._form)) if self._form is not None else None
        # The last line is still being written until a newline (or the end) closes it.
        open_line = len(rows) - 1 if not self._finished else None
        body = Text()
        verse = 0
        for number, row in enumerate(rows):
            if number:
                body.append("\n")
            if not row.strip():
                body.append(visible(row))
                continue
            verse += 1
            if marks is not None:
                mark = next(marks)
                body.append(f"{mark.syllables:>2} {mark.rhyme or ' '}", style="dim")
                missed = mark.missed and number != open_line
                body.append(" ! " if missed else "   ", style="bold red")
            body.append(visible(row), style="reverse" if verse == self._selected else "")
        return body

    def _append_pending(self, body: Text) -> None:
        """The line(s) being written, dim, each after the targets its form gives it."""
        written = len(self._verses())
        rows = (self._pending or "").split("\n")
        for offset, row in enumerate(rows):
            if body:
                body.append("\n")
            if self._form is not None:
                body.append(target_gutter(self._form.line(written + offset)), style="dim")
                body.append(" → ", style="dim")
            body.append(visible(row) or "…", style="dim italic")


def target_gutter(target: LineTarget) -> str:
    """A line's targets as its gutter shows them: the syllables it aims at and its rhyme letter."""
    if target.syllables is None:
        syllables = ""
    else:
        low, high = target.syllables
        syllables = str(low) if low == high else f"{low}-{high}"
    return f"{syllables:>2} {target.rhyme or ' '}"


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
