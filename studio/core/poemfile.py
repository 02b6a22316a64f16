"""Saving poems: append one entry to a poems file, in the format its extension names, and read back.

Formats: `.md`/`.markdown` (a heading with the title, a list of details, the poem as a quote),
`.jsonl`/`.ndjson` (one JSON object per line), anything else plain text. Every entry is appended
in one write followed by fsync, and lands whole or not at all: a write that fails midway is cut
back, so the file is left byte for byte as it was. An entry always starts on a fresh line even if
the file's last line was cut short by something else. Every field and verse line is escaped
(`_escape`), so no text a user or a model wrote can forge an entry, and the readers undo it: each
entry reads back exactly as it was saved. An empty poem is never saved.

An entry's emotion is an emotion or a blend's canonical spec (`joy=0.70+sadness=0.30`); its
settings are the sampling settings, the guidance `strength` among them, plus `strength_applied`
when the core fell back to another strength. Every format reads back all of them.

Records carry a format `version` (RECORD_VERSION; one without it is version 1) and the `runtime`
that wrote the poem (backend, dtype, processor), since a seed reproduces a poem only on the same.
A co-written poem's record also keeps each line's `provenance` (version 3): how the line came
(typed, chosen from K candidates, edited from one of K, or written by "finish") and the emotion
it was written with. jsonl keeps it exactly, Markdown as one `- lines:` detail
(`typed joy; chosen of 3 joy; edited of 3 sadness; finish joy`), and plain text leaves it out.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from studio.core.title import title_for
from trainer.common.atomic import append_durably
from trainer.common.errors import PoetstudioError

FORMATS = ("md", "txt", "jsonl")
# The rule that ends each entry of a plain-text poems file; `write` prints it between poems too.
POEM_RULE = "* * *"
_DETAIL_KEYS = frozenset(
    {"emotion", "first line", "model", "settings", "date", "runtime", "version"}
)
# The record format: 2 added `runtime` and `version`, 3 `provenance`; a record without a version
# is version 1.
RECORD_VERSION = 3
# How a co-written line came to be: its `how`, and `of` (how many candidates) where it was chosen.
PROVENANCE_KINDS = ("typed", "chosen", "edited", "finish")


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
    runtime: str = ""  # e.g. "torch fp32 on AMD EPYC 7B13"
    version: int = RECORD_VERSION  # readers give a record without one 1
    # One per non-blank line of a co-written poem ({"how", "of", "emotion"}); empty otherwise.
    provenance: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.text = self.text.strip("\n")
        self.title = self.title.strip()
        if not self.title:
            self.title = title_for(self.text)
        if not self.created:
            self.created = datetime.now().astimezone().isoformat(timespec="seconds")


def saved_poem(
    text: str,
    emotion: str,
    *,
    first_line: str,
    model: str,
    sampling: dict[str, Any],
    seed: int | None,
    strength: float | None,
    title: str = "",
    runtime: str = "",
) -> SavedPoem:
    """The entry for a poem just written: its sampling settings with the seed that sampled it.

    `strength` is the guidance strength the core applied (None when unknown); where it differs
    from the one asked for, the settings record it as `strength_applied`.
    """
    settings = {**sampling, "seed": seed}
    if strength is not None and strength != settings.get("strength"):
        # Guidance fell back (no neutral model, or a neutral poem): record what really ran.
        settings["strength_applied"] = strength
    return SavedPoem(
        text=text,
        emotion=emotion,
        first_line=first_line,
        model=model,
        settings=settings,
        title=title,
        runtime=runtime,
    )


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


# Escaping. No text a user or a model wrote may forge the file's structure (a line break in a
# one-line field, a heading, a rule) or send codes to a terminal, so every field and verse line
# goes through `_escape`: a backslash is doubled, a control character or a line separator
# becomes `\n`, `\r` or `\uXXXX`, and the characters in `specials` get a backslash, which is
# also how Markdown escapes them (and how it reads `\\`). Everything else (markup, emoji,
# zero-width joiners) is kept as it is.
_CONTROL = "\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029"  # every control but tab, and separators
_SHORT = {"\n": "\\n", "\r": "\\r"}
_UNESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[nr]|[!-/:-@\[-`{-~])")
# A heading's closing hashes would be dropped from a title: escape them. Inline markup is left as
# typed, in the details as in the verse: it cannot forge an entry.
_MD_TITLE = "#"
# Characters that would start a Markdown block if they opened a line of verse.
_MD_BLOCK_START = tuple("#>-*+=|`~<_")
_MD_ORDERED = re.compile(r"^(\d+)([.)])")
_MD_LINK_DEFINITION = re.compile(r"^\[[^\]]*\]:")
_NONE = "(none)"


@functools.cache
def _escapes(specials: str) -> re.Pattern[str]:
    return re.compile(f"[\\\\{re.escape(specials)}{_CONTROL}]")


def _escape(text: str, specials: str = "") -> str:
    def one(match: re.Match[str]) -> str:
        char = match[0]
        if char == "\\" or char in specials:
            return "\\" + char
        return _SHORT.get(char, f"\\u{ord(char):04x}")

    return _escapes(specials).sub(one, text)


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match[1]
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return {"n": "\n", "r": "\r"}.get(code, code)

    return _UNESCAPE.sub(one, text)


def _field(value: str) -> str:
    """A one-line detail value, escaped; an empty one is written as `(none)`."""
    if not value:
        return _NONE
    escaped = _escape(value)
    return "\\" + escaped if escaped == _NONE else escaped


def _field_from(value: str) -> str:
    return "" if value == _NONE else _unescape(value)


def _md_line(line: str) -> str:
    if not line:
        return ">"
    line = _escape(line)
    text = line.lstrip(" \t")
    indent = line[: len(line) - len(text)]
    if text.startswith(_MD_BLOCK_START) or _MD_LINK_DEFINITION.match(text):
        text = "\\" + text
    else:
        # "1. " would start a numbered list: escape its dot, as Markdown does.
        text = _MD_ORDERED.sub(r"\1\\\2", text, count=1)
    # Two trailing spaces: a Markdown hard line break, so verse keeps its lines.
    return f"> {indent}{text}  "


def _txt_line(line: str) -> str:
    line = _escape(line)
    return "\\" + line if line == POEM_RULE else line


def check_provenance(items: Any) -> list[dict[str, Any]]:
    """`items` as a record's provenance, or [] when any item is not one (a hand-edited file)."""
    if not isinstance(items, list):
        return []
    kept = []
    for item in items:
        if not isinstance(item, dict) or item.get("how") not in PROVENANCE_KINDS:
            return []
        of, emotion = item.get("of"), item.get("emotion", "")
        if (of is not None and not (isinstance(of, int) and of > 0)) or not isinstance(
            emotion, str
        ):
            return []
        kept.append({"how": item["how"], "of": of, "emotion": emotion})
    return kept


def _provenance_line(items: list[dict[str, Any]]) -> str:
    """The Markdown detail of a provenance: `chosen of 3 joy; typed joy; ...`."""
    parts = []
    for item in items:
        of = f" of {item['of']}" if item.get("of") else ""
        parts.append(f"{item['how']}{of} {item.get('emotion') or '-'}".strip())
    return "; ".join(parts)


def _provenance_from(line: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for part in line.split("; "):
        words = part.split(" ")
        of = None
        if len(words) == 4 and words[1] == "of" and words[2].isdigit():
            of = int(words[2])
            words = [words[0], words[3]]
        if len(words) != 2:
            return []
        items.append({"how": words[0], "of": of, "emotion": "" if words[1] == "-" else words[1]})
    return check_provenance(items)


def _details(poem: SavedPoem) -> list[tuple[str, str]]:
    return [
        ("emotion", _field(poem.emotion)),
        ("first line", _field(poem.first_line)),
        ("model", _field(poem.model)),
        ("settings", _field(_settings_line(poem.settings))),
        ("date", _field(poem.created)),
        *([("runtime", _field(poem.runtime))] if poem.runtime else []),
        ("version", str(poem.version)),
    ]


def _md_details(poem: SavedPoem) -> list[tuple[str, str]]:
    lines = [("lines", _field(_provenance_line(poem.provenance)))] if poem.provenance else []
    return [*_details(poem), *lines]


def render(poem: SavedPoem, fmt: str) -> str:
    """One entry of `poem` in format `fmt`, ending with a newline; every field is escaped."""
    if fmt == "jsonl":
        line = json.dumps(asdict(poem), ensure_ascii=False)
        # JSON leaves these raw, and they end a line for str.splitlines() and many editors.
        for char in "\x85\u2028\u2029":
            line = line.replace(char, f"\\u{ord(char):04x}")
        return line + "\n"
    if fmt == "md":
        head = [f"## {_escape(poem.title, _MD_TITLE)}", ""]
        head += [f"- {key}: {value}" for key, value in _md_details(poem)]
        body = [_md_line(line) for line in poem.text.split("\n")]
        return "\n".join([*head, "", *body, "", ""]) + "\n"
    title = _txt_line(poem.title)
    head = [title, "=" * max(3, len(title)), ""]
    tail = ["", *(f"{key}: {value}" for key, value in _details(poem)), "", POEM_RULE, ""]
    return "\n".join([*head, *map(_txt_line, poem.text.split("\n")), *tail]) + "\n"


def preview(poem: SavedPoem) -> str:
    """One entry as the Saved tab shows it: the Markdown layout, every field as it was saved.

    Nothing is escaped, but a line break inside a one-line field shows as "␤", so that it cannot
    pass for the file's structure; the caller shows other control characters visibly.
    """
    head = [f"## {_shown(poem.title)}", ""]
    values: tuple[str, ...] = (poem.emotion, poem.first_line or _NONE, poem.model)
    values += (_settings_line(poem.settings), poem.created)
    keys = ("emotion", "first line", "model", "settings", "date")
    head += [f"- {key}: {_shown(value)}" for key, value in zip(keys, values, strict=True)]
    body = [f"> {_shown(line)}  " if line else ">" for line in poem.text.split("\n")]
    return "\n".join([*head, "", *body, "", ""]) + "\n"


def _shown(text: str) -> str:
    return re.sub("[\n\x85\u2028\u2029]", "\u2424", text)


def append_poem(path: Path, poem: SavedPoem, fmt: str | None = None) -> Path:
    """Append `poem` to `path` durably; raise PoetstudioError (the poem is untouched) on failure.

    The entry lands whole or not at all: a write that fails midway (a full disk) is cut back, so
    the file stays byte for byte as it was. An empty poem is refused and never saved.
    """
    path = Path(path).expanduser()
    kind = format_for(path, fmt)
    if not poem.text.strip():
        raise PoetstudioError(
            f"the poem is empty (the model wrote nothing), so it was not saved to {path}; "
            "write another one"
        )
    try:
        # One write of the whole entry in append mode, then fsync; undone if it fails midway.
        append_durably(path, render(poem, kind), fresh_line=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PoetstudioError(
            f"could not save the poem to {path}: {reason}; the poem is not lost, save it elsewhere"
        ) from None
    return path


def _lines(text: str) -> list[str]:
    """The file's lines: split at newlines only (escaped fields hold no other line breaks)."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _from_md(text: str) -> list[SavedPoem]:
    poems: list[SavedPoem] = []
    names = {"emotion": "emotion", "first line": "first_line", "model": "model", "date": "created"}
    names["runtime"] = "runtime"
    current: dict[str, Any] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            current["text"] = "\n".join(lines).strip("\n")
            if current["text"].strip():  # an entry without verse was cut short: not a poem
                poems.append(SavedPoem(**current))

    for raw in _lines(text):
        if raw.startswith("## "):
            close()
            current = {"title": _unescape(raw[3:].strip()), "emotion": "", "version": 1}
            lines = []
        elif current is None:
            continue
        elif raw.startswith("- ") and ": " in raw and not lines:
            key, value = raw[2:].split(": ", 1)
            if key in names:
                current[names[key]] = _field_from(value)
            elif key == "settings":
                current["settings"] = _settings_from(_field_from(value))
            elif key == "version":
                current["version"] = _version(value)
            elif key == "lines":
                current["provenance"] = _provenance_from(_field_from(value))
        elif raw.startswith(">"):
            line = raw[1:].removeprefix(" ").removesuffix("  ")
            lines.append(_unescape(line))
    close()
    return poems


def _from_jsonl(text: str) -> list[SavedPoem]:
    special = {"settings": dict, "version": int, "provenance": list}
    kinds = {f.name: special.get(f.name, str) for f in fields(SavedPoem)}
    poems = []
    for raw in text.split("\n"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash elsewhere: skip it, keep the rest
        if isinstance(data, dict) and isinstance(data.get("text"), str) and data["text"].strip():
            # A field of the wrong type (a hand-edited line) is dropped, not trusted.
            known = {k: v for k, v in data.items() if k in kinds and isinstance(v, kinds[k])}
            if "provenance" in known:
                known["provenance"] = check_provenance(known["provenance"])
            poems.append(SavedPoem(**{"emotion": "", "version": 1, **known}))  # type: ignore[arg-type]
    return poems


def _from_txt(text: str) -> list[SavedPoem]:
    poems = []
    for block in "\n".join(_lines(text)).split("\n" + POEM_RULE + "\n"):
        rows = block.strip("\n").split("\n")
        if len(rows) < 3 or not set(rows[1]) <= {"="}:
            continue
        body = rows[3:]
        details: dict[str, str] = {}
        while body and body[-1].split(": ", 1)[0] in _DETAIL_KEYS and ": " in body[-1]:
            key, value = body.pop().split(": ", 1)
            details[key] = _field_from(value)
        verse = "\n".join(_unescape(line) for line in body).strip("\n")
        if not verse.strip():
            continue  # an entry without verse was cut short: not a poem
        poems.append(
            SavedPoem(
                text=verse,
                emotion=details.get("emotion", ""),
                first_line=details.get("first line", ""),
                model=details.get("model", ""),
                settings=_settings_from(details.get("settings", "")),
                title=_unescape(rows[0]),
                created=details.get("date", ""),
                runtime=details.get("runtime", ""),
                version=_version(details.get("version", "1")),
            )
        )
    return poems


def _version(text: str) -> int:
    """A record's format version from its text; anything unreadable counts as version 1."""
    return int(text) if text.isascii() and text.isdigit() else 1


def parse_poems(text: str, fmt: str) -> list[SavedPoem]:
    """The poems in the text of a poems file in format `fmt`, oldest first.

    Entries cut short (no verse) and lines that are not part of an entry are skipped.
    """
    if fmt == "md":
        return _from_md(text)
    if fmt == "jsonl":
        return _from_jsonl(text)
    return _from_txt(text)


def read_poems(path: Path, fmt: str | None = None) -> list[SavedPoem]:
    """The poems saved in `path`, oldest first; an absent file holds none."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PoetstudioError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_poems(text, format_for(path, fmt))
