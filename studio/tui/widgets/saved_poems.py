"""The saved-poems view: the poems in the poems file, read back, newest entries at the bottom.

Entries are parsed by the poems file's own reader (studio/core/poemfile.py) and shown as they were
saved, not as escaped on disk; a file with no entries in it is shown as it is.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from studio.tui.widgets.literal import literal

# The view shows the file's tail: a poems file only grows, and the newest poems matter most.
TAIL_BYTES = 256 * 1024


def read_tail(path: Path, limit: int = TAIL_BYTES) -> tuple[str, bool]:
    """The last `limit` bytes of `path` as text, and whether earlier content was cut off."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    cut = size > limit
    if cut:
        # Start at a line boundary so no half line (or half character) is shown.
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace"), cut


class SavedPoemsView(VerticalScroll):
    """Shows the poems file; call `load` whenever it may have changed."""

    def compose(self) -> ComposeResult:
        yield Static("", id="saved-path")
        yield Static("", id="saved-body")

    def on_mount(self) -> None:
        self.border_title = "Saved poems"

    def load(self, path: Path) -> None:
        """Read `path` and show it, or say why it cannot be shown."""
        # Imported here, not at start-up: the first frame does not need the poems file's reader.
        from studio.core.poemfile import format_for, parse_poems, preview

        header = self.query_one("#saved-path", Static)
        body = self.query_one("#saved-body", Static)
        try:
            text, cut = read_tail(path)
        except FileNotFoundError:
            header.update(literal(str(path), style="bold"))
            body.update(Text("No poems saved yet. Press ctrl+s on a poem to save it here.", "dim"))
            return
        except OSError as exc:
            header.update(literal(str(path), style="bold"))
            body.update(literal(f"cannot read the poems file: {exc.strerror or exc}", style="red"))
            return
        note = " (showing the newest part)" if cut else ""
        header.update(literal(f"{path}{note}", style="bold"))
        poems = parse_poems(text, format_for(path))
        shown = "".join(preview(poem) for poem in poems) if poems else text
        body.update(literal(shown or "The poems file is empty."))
        self.scroll_end(animate=False)
