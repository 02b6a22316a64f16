"""Saving poems: append one entry to a poems file, in the format its extension names, and read back.

Formats: `.md`/`.markdown` (a heading with the title, a list of details, the poem as a quote),
`.jsonl`/`.ndjson` (one JSON object per line), anything else plain text. Every entry is appended
in one write followed by flush and fsync; the file is never truncated, and an entry always starts
on a fresh line even if the file's last line was cut short.

An entry's emotion is an emotion or a blend's canonical spec (`joy=0.70+sadness=0.30`); its
settings are the sampling settings, the guidance `strength` among them, plus `strength_applied`
when the core fell back to another strength. Every format reads back all of them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.title import title_for
from trainer.atomic import append_durably
from trainer.errors import PoetstudioError

FORMATS = ("md", "txt", "jsonl")
_TXT_RULE = "* * *"
_DETAIL_KEYS = frozenset({"emotion", "first line", "model", "settings", "date"})
# Characters that would start a Markdown block if they opened a line of verse.
_MD_BLOCK_START = tuple("#>-*+=|`~") + tuple("0123456789")


@dataclass
class SavedPoem:
    """A poem with everything needed to find it again and reproduce it."""

    text: str
    emotion: str
    first_line: str = ""
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        self.text = self.text.strip("\n")
        if not self.title:
            self.title = title_for(self.text)
        if not self.created:
            self.created = datetime.now().astimezone().isoformat(timespec="seconds")


def format_for(path: Path, explicit: str | None = None) -> str:
    """The format to write `path` in: `explicit` if given, else from the file extension."""
    if explicit:
        name = explicit.lower().lstrip(".")
        if name not in FORMATS:
            raise PoetstudioError(f"unknown poem format {explicit!r}; choose md, txt or jsonl")
        return name
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        return "md"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    return "txt"


def _settings_line(settings: dict[str, Any]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in settings.items())


def _settings_from(line: str) -> dict[str, Any]:
    """The settings `_settings_line` wrote, back as a dict (keys get their underscores back)."""
    settings: dict[str, Any] = {}
    for item in line.split(", "):
        key, _, value = item.rpartition(" ")
        if key:
            settings[key.replace(" ", "_")] = _scalar(value)
    return settings


def _scalar(text: str) -> Any:
    """A setting's value from its text: a number, None, a bool, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"None": None, "True": True, "False": False}.get(text, text)


def _md_line(line: str) -> str:
    if not line.strip():
        return ">"
    if line.lstrip().startswith(_MD_BLOCK_START) or line.startswith("\\"):
        line = "\\" + line
    # Two trailing spaces: a Markdown hard line break, so verse keeps its lines.
    return f"> {line}  "


def render(poem: SavedPoem, fmt: str) -> str:
    """One entry of `poem` in format `fmt`, ending with a newline."""
    if fmt == "jsonl":
        return json.dumps(asdict(poem), ensure_ascii=False) + "\n"
    details = [
        ("emotion", poem.emotion),
        ("first line", poem.first_line or "(none)"),
        ("model", poem.model),
        ("settings", _settings_line(poem.settings)),
        ("date", poem.created),
    ]
    if fmt == "md":
        head = [f"## {poem.title}", ""] + [f"- {key}: {value}" for key, value in details]
        body = [_md_line(line) for line in poem.text.splitlines()]
        return "\n".join([*head, "", *body, "", ""]) + "\n"
    head = [poem.title, "=" * max(3, len(poem.title)), ""]
    tail = ["", *(f"{key}: {value}" for key, value in details), "", _TXT_RULE, ""]
    return "\n".join([*head, *poem.text.splitlines(), *tail]) + "\n"


def _needs_newline(path: Path) -> bool:
    """Whether the file exists and its last byte is not a newline (an earlier write was cut)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def append_poem(path: Path, poem: SavedPoem, fmt: str | None = None) -> Path:
    """Append `poem` to `path` durably; raise PoetstudioError (the poem is untouched) on failure."""
    path = Path(path).expanduser()
    kind = format_for(path, fmt)
    try:
        entry = render(poem, kind)
        if _needs_newline(path):
            entry = "\n" + entry
        # One write of the whole entry in append mode, then flush and fsync: never truncates.
        append_durably(path, entry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PoetstudioError(
            f"could not save the poem to {path}: {reason}; the poem is not lost, save it elsewhere"
        ) from None
    return path


def _from_md(text: str) -> list[SavedPoem]:
    poems: list[SavedPoem] = []
    names = {"emotion": "emotion", "first line": "first_line", "model": "model", "date": "created"}
    current: dict[str, Any] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            current["text"] = "\n".join(lines).strip("\n")
            poems.append(SavedPoem(**current))

    for raw in text.splitlines():
        if raw.startswith("## "):
            close()
            current, lines = {"title": raw[3:].strip(), "emotion": ""}, []
        elif current is None:
            continue
        elif raw.startswith("- ") and ": " in raw and not lines:
            key, value = raw[2:].split(": ", 1)
            if key in names:
                current[names[key]] = "" if value == "(none)" else value
            elif key == "settings":
                current["settings"] = _settings_from(value)
        elif raw.startswith(">"):
            line = raw[1:].removeprefix(" ").removesuffix("  ")
            lines.append(line[1:] if line.startswith("\\") else line)
    close()
    return poems


def _from_jsonl(text: str) -> list[SavedPoem]:
    known = {f.name for f in fields(SavedPoem)}
    poems = []
    for raw in text.splitlines():
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash elsewhere: skip it, keep the rest
        if isinstance(data, dict) and isinstance(data.get("text"), str):
            poems.append(SavedPoem(**{k: v for k, v in data.items() if k in known}))
    return poems


def _from_txt(text: str) -> list[SavedPoem]:
    poems = []
    for block in text.split("\n" + _TXT_RULE + "\n"):
        rows = block.strip("\n").splitlines()
        if len(rows) < 3 or not set(rows[1]) <= {"="}:
            continue
        body = rows[3:]
        details: dict[str, str] = {}
        while body and body[-1].split(": ", 1)[0] in _DETAIL_KEYS:
            key, value = body.pop().split(": ", 1)
            details[key] = value
        poems.append(
            SavedPoem(
                text="\n".join(body).strip("\n"),
                emotion=details.get("emotion", ""),
                first_line=details.get("first line", "").replace("(none)", ""),
                model=details.get("model", ""),
                settings=_settings_from(details.get("settings", "")),
                title=rows[0],
                created=details.get("date", ""),
            )
        )
    return poems


def read_poems(path: Path, fmt: str | None = None) -> list[SavedPoem]:
    """The poems saved in `path`, oldest first; an absent file holds none."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PoetstudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    kind = format_for(path, fmt)
    if kind == "md":
        return _from_md(text)
    if kind == "jsonl":
        return _from_jsonl(text)
    return _from_txt(text)
