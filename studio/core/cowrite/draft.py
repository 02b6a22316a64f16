"""The draft: the poem being co-written, each line with how it came and the emotion it was written
with, kept in the data home after every change so that a crash or a quit loses nothing.

    draft = Draft.open(home) or Draft.start(home, "joy")   # offered back after a crash
    draft.add("The lamps are out", "typed", "joy")
    draft.add(candidate.text, "chosen", "joy", of=3)        # saved (atomically) each time
    draft.undo()                                            # the last line back (None at none)
    draft.replace(2, text, "chosen", "joy", of=3)           # a rewritten line
    entry = draft.saved_poem(model=..., settings=..., ...)  # a poems-file record with provenance
    draft.discard()                                         # once the poem is saved

How a line came (`how`): typed by the writer, chosen from `of` candidates, edited from one of
`of` candidates, or written by "finish" (studio/core/poemfile.py's PROVENANCE_KINDS). A stanza
break is a line of no text. The file is `draft.json` in the data home, written through
trainer.common.atomic and read back through trainer.common.records.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.poemfile import PROVENANCE_KINDS, SavedPoem, saved_poem
from trainer.common import records
from trainer.common.atomic import atomic_write_json
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

DRAFT_FORMAT = 1
_LINE = records.obj(
    text=records.required(records.STRING),
    how=records.required(records.one_of(*PROVENANCE_KINDS)),
    of=records.optional(records.COUNT, nullable=True),
    emotion=records.required(records.STRING),
)
_SCHEMA: records.Schema = {
    "format": records.required(records.INTEGER),
    "emotion": records.required(records.STRING),
    "settings": records.optional(records.OBJECT),
    "lines": records.required(records.list_of(_LINE)),
}


def draft_path(home: DataHome) -> Path:
    """Where the draft is kept."""
    return home.root / "draft.json"


@dataclass
class DraftLine:
    """One line of the draft and where it came from."""

    text: str  # "" for a stanza break
    how: str  # typed, chosen, edited or finish
    emotion: str
    of: int | None = None  # how many candidates it was chosen or edited from


@dataclass
class Draft:
    """The poem being co-written, saved after every change."""

    path: Path
    emotion: str  # the emotion the next line is written with
    lines: list[DraftLine] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # the sampling settings, to restore

    @classmethod
    def start(cls, home: DataHome, emotion: str, settings: dict[str, Any] | None = None) -> Draft:
        """A new empty draft (saved once it has a line)."""
        return cls(draft_path(home), emotion, settings=dict(settings or {}))

    @classmethod
    def open(cls, home: DataHome) -> Draft | None:
        """The draft left in the data home, or None when there is none; a damaged one is a
        one-line error naming the file."""
        path = draft_path(home)
        try:
            data = records.read_object(path, _SCHEMA, "draft", fix=f"delete {path} to start afresh")
        except records.MissingRecordError:
            return None
        lines = [DraftLine(i["text"], i["how"], i["emotion"], i.get("of")) for i in data["lines"]]
        return cls(path, data["emotion"], lines, dict(data.get("settings") or {}))

    @property
    def texts(self) -> list[str]:
        """The poem's lines ("" for a stanza break), as CoWriter takes them."""
        return [line.text for line in self.lines]

    @property
    def text(self) -> str:
        """The poem as text."""
        return "\n".join(self.texts)

    def add(self, text: str, how: str, emotion: str, of: int | None = None) -> DraftLine:
        """Append a line (or a stanza break: "") and save."""
        line = _line(text, how, emotion, of)
        self.lines.append(line)
        self.save()
        return line

    def undo(self) -> DraftLine | None:
        """Take back the last line (with the stanza breaks around it) and save; None when the
        draft has no line."""
        while self.lines and not self.lines[-1].text:
            self.lines.pop()
        if not self.lines:
            return None
        line = self.lines.pop()
        while self.lines and not self.lines[-1].text:
            self.lines.pop()
        self.save()
        return line

    def replace(self, number: int, text: str, how: str, emotion: str, of: int | None) -> None:
        """Put `text` in place of line `number` (1-based, breaks not counted) and save."""
        written = [i for i, line in enumerate(self.lines) if line.text]
        if not 1 <= number <= len(written):
            raise PoetstudioError(f"line {number} is not in the poem: it has {len(written)}")
        self.lines[written[number - 1]] = _line(text, how, emotion, of)
        self.save()

    def save(self) -> None:
        """Write the draft to the data home (atomically)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.path,
            {
                "format": DRAFT_FORMAT,
                "emotion": self.emotion,
                "settings": self.settings,
                "lines": [
                    {"text": line.text, "how": line.how, "of": line.of, "emotion": line.emotion}
                    for line in self.lines
                ],
            },
        )

    def discard(self) -> None:
        """Forget the draft (the poem was saved, or thrown away)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def provenance(self) -> list[dict[str, Any]]:
        """Each written line's provenance, as a poems-file record keeps it."""
        return [
            {"how": line.how, "of": line.of, "emotion": line.emotion}
            for line in self.lines
            if line.text
        ]

    def saved_poem(self, **entry: Any) -> SavedPoem:
        """The poems-file entry of the draft: `entry` as studio/core/poemfile.py's `saved_poem`
        takes it (model, sampling, seed, strength, runtime), with each line's provenance."""
        written = [line.text for line in self.lines if line.text]
        poem = saved_poem(
            self.text, self.emotion, first_line=written[0] if written else "", **entry
        )
        poem.provenance = self.provenance()
        return poem


def _line(text: str, how: str, emotion: str, of: int | None) -> DraftLine:
    if how not in PROVENANCE_KINDS:
        raise ValueError(f"unknown provenance {how!r}")
    if "\n" in text:
        raise PoetstudioError("a draft line holds one line; split it first")
    return DraftLine(text.strip(), how, emotion, of if how in ("chosen", "edited") else None)
