"""The status bar: what the studio is doing (and a note on the last thing it did, such as a
save), model, device, guidance strength, time to first token and tokens/s."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from studio.tui.widgets.literal import visible


class StatusBar(Static):
    """One line of facts; `set` changes some of them and redraws."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._fields: dict[str, str] = {
            "state": "starting",
            "note": "",
            "model": "no model loaded",
            "device": "device: pending",
            "guidance": "",
            "ttft": "",
            "speed": "",
        }

    def on_mount(self) -> None:
        self._redraw()

    def set(self, **fields: str) -> None:
        """Replace the named fields (state, note, model, device, guidance, ttft, speed) and redraw.

        A new state clears the note, which was about what happened in the last one.
        """
        if "state" in fields and "note" not in fields:
            fields = {**fields, "note": ""}
        self._fields.update(fields)
        self._redraw()

    def field(self, name: str) -> str:
        """The current text of one field."""
        return self._fields.get(name, "")

    def _redraw(self) -> None:
        text = Text()
        keys = ("state", "note", "model", "device", "guidance", "ttft", "speed")
        parts = [self._fields[key] for key in keys]
        for index, part in enumerate(p for p in parts if p):
            if index:
                text.append(" │ ", style="dim")
            text.append(visible(part), style="bold" if index == 0 else "")
        self.update(text)
