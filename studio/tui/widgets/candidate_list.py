"""The candidate lines of co-writing: K lines streaming at once, one to accept, edit or replace.

Each row reads `1  the line so far…`; a row still being written ends with an ellipsis. Keys while
it has the focus: 1..K accept that row, Enter the highlighted one, e edits the highlighted one in
the line box, r asks for new ones. The list only shows and reports; the app decides what a key
does (accepting while rows still stream takes the row as it stands).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList

from studio.core.cowrite.writer import MAX_CANDIDATES
from studio.tui.widgets.literal import visible

STREAMING = "…"


class CandidateList(OptionList):
    """K candidate lines; `show` starts a set, `update` changes one row as it streams."""

    BINDINGS = [
        Binding("1", "accept(1)", "Accept", key_display="1…K"),
        *(Binding(str(n), f"accept({n})", show=False) for n in range(2, MAX_CANDIDATES + 1)),
        Binding("e", "edit", "Edit"),
        Binding("r", "regenerate", "New lines"),
    ]

    class Accept(Message):
        """Accept candidate `row` (0-based) as it stands now."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    class Edit(Message):
        """Put candidate `row` (0-based) in the line box to edit it."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    class Regenerate(Message):
        """Write new candidates, with new seeds."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._texts: list[str] = []
        self._done: list[bool] = []
        self.heading = "Next line"

    @property
    def texts(self) -> list[str]:
        """Each row's line as it stands now."""
        return list(self._texts)

    @property
    def streaming(self) -> bool:
        """Whether some row is still being written."""
        return not all(self._done)

    def on_mount(self) -> None:
        self._retitle()

    def show(self, count: int, heading: str) -> None:
        """Start `count` empty rows under `heading` (e.g. "Next line" or "Line 3")."""
        self.heading = heading
        self._texts = [""] * count
        self._done = [False] * count
        self.set_options([self._prompt(row) for row in range(count)])
        self.highlighted = 0 if count else None
        self._retitle()

    def reset(self) -> None:
        """No candidates (nothing asked yet, or the last ones were used)."""
        self._texts, self._done = [], []
        self.clear_options()
        self._retitle()

    def update(self, row: int, text: str, done: bool) -> None:
        """Row `row` now reads `text` (finished when `done`)."""
        if not 0 <= row < len(self._texts):
            return
        self._texts[row] = text
        self._done[row] = done
        self.replace_option_prompt_at_index(row, self._prompt(row))
        self._retitle()

    def replace_all(self, texts: Sequence[str], heading: str) -> None:
        """Show finished rows `texts` in this order (a rewrite's, once ranked)."""
        self.heading = heading
        highlighted = self.highlighted
        self._texts = list(texts)
        self._done = [True] * len(texts)
        self.set_options([self._prompt(row) for row in range(len(texts))])
        if texts:
            self.highlighted = min(highlighted or 0, len(texts) - 1)
        self._retitle()

    def _prompt(self, row: int) -> Text:
        prompt = Text(f"{row + 1}  ", style="bold")
        prompt.append(visible(self._texts[row]))
        if not self._done[row]:
            prompt.append(STREAMING, style="dim")
        return prompt

    def _retitle(self) -> None:
        count = len(self._texts)
        if not count:
            self.border_title = "Candidates"
            self.border_subtitle = ""
            return
        state = "writing" if self.streaming else f"{count} to choose from"
        self.border_title = f"{self.heading}: {state}"
        self.border_subtitle = f"1-{count} accept · e edit · r new"

    def action_accept(self, number: int) -> None:
        """Accept candidate `number` (1-based), if there is one."""
        if 1 <= number <= len(self._texts):
            self.post_message(self.Accept(number - 1))

    def action_edit(self) -> None:
        """Edit the highlighted candidate in the line box."""
        if self.highlighted is not None and self._texts:
            self.post_message(self.Edit(self.highlighted))

    def action_regenerate(self) -> None:
        """Ask for new candidates."""
        self.post_message(self.Regenerate())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        # Enter (or a click) on a row accepts it.
        event.stop()
        self.post_message(self.Accept(event.option_index))
