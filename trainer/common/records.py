"""One validating reader for the JSON files poetstudio writes and later reads back.

Model manifests, job files, job events and dataset lines all pass through here: the file is read,
the JSON parsed, and every field checked against a small declarative schema. What comes back is a
plain dict whose declared fields have the declared types (unknown fields pass untouched); anything
else is a one-line `RecordError` naming the file, the line for JSON-lines files, and the first
field that is wrong, so no caller ever meets a `JSONDecodeError`, a list or a string-typed pid.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.common.errors import PoetstudioError


@dataclass(frozen=True)
class Kind:
    """What one JSON value must be: a test, its name for messages, and any nested rules."""

    name: str  # as a message says it: "a string", "an integer"
    test: Callable[[Any], bool]
    fields: Mapping[str, Field] | None = None  # an object's known fields, checked in turn
    items: Kind | None = None  # what every value of an object, or item of a list, must be


@dataclass(frozen=True)
class Field:
    """One field of an object: its kind, whether it must be there, whether null is allowed."""

    kind: Kind
    required: bool = False
    nullable: bool = False


Schema = Mapping[str, Field]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ANY = Kind("any value", lambda value: True)
STRING = Kind("a string", lambda value: isinstance(value, str))
BOOLEAN = Kind("true or false", lambda value: isinstance(value, bool))
INTEGER = Kind("an integer", _is_int)
COUNT = Kind("a whole number of 0 or more", lambda value: _is_int(value) and value >= 0)
# A process id: os.kill with 0 or a negative number would signal a whole process group.
PID = Kind("a process id (a positive integer)", lambda value: _is_int(value) and 0 < value < 2**31)
NUMBER = Kind(
    "a number", lambda value: isinstance(value, int | float) and not isinstance(value, bool)
)
OBJECT = Kind("an object", lambda value: isinstance(value, dict))
LIST = Kind("a list", lambda value: isinstance(value, list))


def required(kind: Kind, *, nullable: bool = False) -> Field:
    """A field that must be present."""
    return Field(kind, required=True, nullable=nullable)


def optional(kind: Kind, *, nullable: bool = False) -> Field:
    """A field that may be left out."""
    return Field(kind, nullable=nullable)


def obj(**fields: Field) -> Kind:
    """An object with these known fields (others are allowed and left unchecked)."""
    return Kind("an object", OBJECT.test, fields=fields)


def mapping(values: Kind) -> Kind:
    """An object whose every value is of kind `values`."""
    return Kind("an object", OBJECT.test, items=values)


def list_of(items: Kind) -> Kind:
    """A list whose every item is of kind `items`."""
    return Kind("a list", LIST.test, items=items)


def one_of(*choices: str) -> Kind:
    """One of the strings `choices`."""
    allowed = frozenset(choices)
    return Kind(f"one of: {', '.join(choices)}", lambda value: value in allowed)


_TYPE_KINDS = {"str": STRING, "int": INTEGER, "float": NUMBER, "bool": BOOLEAN}


def dataclass_schema(cls: type) -> Schema:
    """The schema of a dataclass's `asdict` form, from its field annotations.

    Fields without a default are required; `X | None` allows null; annotations other than str,
    int, float and bool are not checked here.
    """
    schema: dict[str, Field] = {}
    for spec in dataclasses.fields(cls):
        annotation = spec.type.__name__ if isinstance(spec.type, type) else str(spec.type)
        parts = [part.strip() for part in annotation.split("|")]
        nullable = "None" in parts
        names = [part for part in parts if part != "None"]
        kind = _TYPE_KINDS.get(names[0], ANY) if len(names) == 1 else ANY
        has_default = (
            spec.default is not dataclasses.MISSING
            or spec.default_factory is not dataclasses.MISSING
        )
        schema[spec.name] = Field(kind, required=not has_default, nullable=nullable)
    return schema


class RecordError(PoetstudioError):
    """A file poetstudio reads back is unreadable or not in its format; the message names it."""

    def __init__(self, message: str, path: Path, line: int | None = None) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.line = line


class MissingRecordError(RecordError):
    """The file is not there at all."""


def corrupt(
    what: str, path: Path, reason: str, line: int | None = None, fix: str = ""
) -> RecordError:
    """The one-line error for a damaged file: what it is, where, the first problem, the fix."""
    where = f"{path} line {line}" if line is not None else str(path)
    return RecordError(
        f"corrupt {what} {where}: {reason}" + (f"; {fix}" if fix else ""), path, line
    )


def _show(value: Any) -> str:
    """A value as a message quotes it: short, on one line."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def problem(value: Any, kind: Kind, where: str) -> str | None:
    """What is wrong with `value` as a `kind` (at `where`, a dotted field path), or None."""
    if not kind.test(value):
        return f"{where} is {_show(value)}, not {kind.name}"
    if kind.fields is not None:
        found = _fields_problem(value, kind.fields, f"{where}.")
        if found:
            return found
    if kind.items is not None:
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in pairs:
            found = problem(item, kind.items, f"{where}.{key}" if where else str(key))
            if found:
                return found
    return None


def _fields_problem(data: dict[str, Any], schema: Schema, prefix: str) -> str | None:
    for name, spec in schema.items():
        if name not in data:
            if spec.required:
                return f"{prefix}{name} is missing"
            continue
        value = data[name]
        if value is None and spec.nullable:
            continue
        found = problem(value, spec.kind, prefix + name)
        if found:
            return found
    return None


def check(data: Any, schema: Schema) -> str | None:
    """What is wrong with `data` as an object of `schema`, or None when it fits."""
    if not isinstance(data, dict):
        return f"not a JSON object ({_show(data)})"
    return _fields_problem(data, schema, "")


def parse_object(
    text: str | bytes, schema: Schema, what: str, path: Path, line: int | None = None, fix: str = ""
) -> dict[str, Any]:
    """Parse one JSON object (a whole file's text, or one JSON line) and check it."""
    try:
        data = json.loads(text)
    except UnicodeDecodeError:
        raise corrupt(what, path, "not UTF-8 text", line, fix) from None
    except json.JSONDecodeError as exc:
        at = f" at column {exc.colno}" if line is not None else f" at line {exc.lineno}"
        raise corrupt(what, path, f"not valid JSON ({exc.msg}{at})", line, fix) from None
    except ValueError as exc:  # e.g. an integer too long to convert
        raise corrupt(what, path, f"not valid JSON ({exc})", line, fix) from None
    except RecursionError:
        raise corrupt(what, path, "JSON nested too deeply", line, fix) from None
    found = check(data, schema)
    if found:
        raise corrupt(what, path, found, line, fix)
    return data


def read_object(path: Path, schema: Schema, what: str, fix: str = "") -> dict[str, Any]:
    """Read a JSON object file and check it against `schema`.

    Raises MissingRecordError when the file is absent, RecordError when it cannot be read or is
    not in its format; both are one-line PoetstudioErrors that name the file and end with `fix`.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        message = f"no {what} at {path}" + (f"; {fix}" if fix else "")
        raise MissingRecordError(message, path) from None
    except OSError as exc:
        raise corrupt(what, path, f"cannot read it ({exc.strerror or exc})", fix=fix) from None
    return parse_object(raw, schema, what, path, fix=fix)
