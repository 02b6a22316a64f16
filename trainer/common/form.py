"""Poetic forms: a rhyme scheme, syllables per line and a meter, parsed into per-line targets.

The grammar (the same for `write --form/--rhyme/--syllables/--meter` and the studio's control):

- rhyme scheme: letters, one per line. A capital letter names a rhyme group (lowercase letters
  are read as capitals); `-` or lowercase `x` is an unrhymed line; spaces break stanzas:
  `ABAB CDCD EFEF GG`. At most 40 lines.
- syllables: a comma list of counts (`10`, `5,7,5`) or `a-b` ranges (`8-9,8-9,5-6`), each from 1
  to 30. A list shorter than the scheme repeats over its lines, so its length must divide the
  number of lines (`8,6` fits ABCB; `5,7,5` does not fit 14 lines). Without a scheme the list
  repeats over however many lines the poem has.
- meter: iambic, trochaic, anapestic or dactylic (a stress pattern, scored softly).

Presets name all three; the explicit parts override a preset's. `free` is free verse: no targets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from trainer.common.errors import PoetstudioError

MAX_LINES = 40
MAX_SYLLABLES = 30
UNRHYMED = "-x"
# Weak (0) and strong (1) beats, repeating from the line's first syllable.
METERS: dict[str, str] = {
    "iambic": "01",
    "trochaic": "10",
    "anapestic": "001",
    "dactylic": "100",
}
# Token budget: English verse runs under one token per syllable in the bundled tokenizers
# (short words are single tokens); 1.5 per syllable plus punctuation and the newline is room
# enough, since the budget only caps a poem and costs nothing unused.
TOKENS_PER_SYLLABLE = 1.5
TOKENS_PER_LINE_EXTRA = 4
TOKENS_PER_FREE_LINE = 24


@dataclass(frozen=True)
class Preset:
    """A named form: its scheme, syllables and meter in the grammar above (None: not set)."""

    scheme: str | None
    syllables: str | None
    meter: str | None
    about: str


PRESETS: dict[str, Preset] = {
    "free": Preset(None, None, None, "free verse: no rhyme, syllable or meter targets"),
    "couplets": Preset("AABB", None, None, "rhyming couplets, AABB"),
    "quatrain": Preset("ABAB", None, None, "a quatrain with alternate rhyme, ABAB"),
    "ballad": Preset("ABCB", "8,6", None, "a ballad stanza, ABCB, 8 and 6 syllables"),
    "limerick": Preset("AABBA", "8-9,8-9,5-6,5-6,8-9", None, "a limerick, AABBA"),
    "sonnet": Preset(
        "ABAB CDCD EFEF GG", "10", "iambic", "a Shakespearean sonnet in iambic pentameter"
    ),
    "haiku": Preset("xxx", "5,7,5", None, "a haiku: 5, 7 and 5 syllables, unrhymed"),
}


@dataclass(frozen=True)
class LineTarget:
    """What one line of a form asks for."""

    index: int  # 0-based line number in the poem
    stanza: int  # 0-based stanza number
    syllables: tuple[int, int] | None  # inclusive (low, high), or None for any
    rhyme: str | None  # the rhyme group's letter, or None when unrhymed
    rhymes_with: int | None  # the group's first line, which sets the sound; None for the first
    ends_stanza: bool  # a stanza break (blank line) follows this line
    meter: str | None  # weak/strong beats for the line's syllables ("0101010101"), or None


@dataclass(frozen=True)
class Form:
    """A parsed form. `stanzas` holds the scheme's rhyme labels (None: unrhymed) per stanza; an
    empty tuple means the form fixes no lines (free verse, or syllables alone, which repeat)."""

    name: str
    stanzas: tuple[tuple[str | None, ...], ...]
    syllables: tuple[tuple[int, int], ...]
    meter: str | None

    @property
    def is_free(self) -> bool:
        """Whether the form asks for nothing at all (today's free verse)."""
        return not self.stanzas and not self.syllables and self.meter is None

    @property
    def line_count(self) -> int | None:
        """The number of lines the form fixes, or None when the poem sets it."""
        return sum(len(stanza) for stanza in self.stanzas) or None

    @property
    def stanza_count(self) -> int | None:
        """The number of stanzas the form fixes, or None when the poem sets it."""
        return len(self.stanzas) or None

    @property
    def stanza_sizes(self) -> tuple[int, ...]:
        """Lines per stanza; empty when the form fixes no lines."""
        return tuple(len(stanza) for stanza in self.stanzas)

    @property
    def scheme(self) -> str | None:
        """The rhyme scheme written back in the grammar (`x` for unrhymed), or None."""
        if not self.stanzas:
            return None
        return " ".join("".join(label or "x" for label in stanza) for stanza in self.stanzas)

    def _labels(self) -> list[str | None]:
        return [label for stanza in self.stanzas for label in stanza]

    def line(self, index: int) -> LineTarget:
        """The targets of line `index` (0-based). Past a fixed form's end a line has none; an
        open form (syllables or meter alone) repeats its syllables over every line."""
        if index < 0:
            raise ValueError(f"line index {index} is negative")
        count = self.line_count
        if count is not None and index >= count:
            return LineTarget(index, len(self.stanzas) - 1, None, None, None, False, None)
        syllables = self.syllables[index % len(self.syllables)] if self.syllables else None
        meter = None
        if self.meter is not None:
            beats = syllables[1] if syllables else 10
            cycle = METERS[self.meter]
            meter = (cycle * beats)[:beats]
        if count is None:
            return LineTarget(index, 0, syllables, None, None, False, meter)
        labels = self._labels()
        label = labels[index]
        first = labels.index(label) if label is not None else None
        stanza, start = 0, 0
        for number, size in enumerate(self.stanza_sizes):
            if index < start + size:
                stanza = number
                break
            start += size
        ends = index == start + self.stanza_sizes[stanza] - 1 and stanza < len(self.stanzas) - 1
        return LineTarget(
            index=index,
            stanza=stanza,
            syllables=syllables,
            rhyme=label,
            rhymes_with=first if first is not None and first < index else None,
            ends_stanza=ends,
            meter=meter,
        )

    def lines(self) -> list[LineTarget]:
        """The targets of every line a fixed form has; empty for an open form."""
        return [self.line(i) for i in range(self.line_count or 0)]

    def rhyme_pairs(self) -> list[tuple[int, int]]:
        """(earlier, later) line pairs that must rhyme: each later line of a group with the
        group's first line."""
        return [
            (target.rhymes_with, target.index)
            for target in self.lines()
            if target.rhymes_with is not None
        ]

    def token_budget(self, lines: int | None = None) -> int:
        """Tokens enough for the whole poem: per line by its syllables, plus stanza breaks.

        `lines` sizes an open form (the poem's line limit); a fixed form uses its own count.
        """
        count = self.line_count or lines
        if count is None:
            raise ValueError("an open form needs the number of lines to size its budget")
        total = 0
        for index in range(count):
            syllables = self.line(index).syllables
            if syllables is None:
                total += TOKENS_PER_FREE_LINE
            else:
                total += math.ceil(syllables[1] * TOKENS_PER_SYLLABLE) + TOKENS_PER_LINE_EXTRA
        return total + max(len(self.stanzas) - 1, 0)


def check_line_limit(form: Form, max_lines: int | None) -> None:
    """Refuse a line limit below what a fixed form needs (a sonnet cut at 8 lines is no sonnet).

    A limit at or above the form's own count is harmless: the form ends the poem first.
    """
    count = form.line_count
    if max_lines is not None and count is not None and max_lines < count:
        raise PoetstudioError(
            f"a limit of {max_lines} lines conflicts with the {form.name} form's {count} lines; "
            "drop the limit or choose another form"
        )


def parse_scheme(text: str) -> tuple[tuple[str | None, ...], ...]:
    """Stanzas of rhyme labels from a scheme such as `ABAB CDCD EFEF GG` (None: unrhymed)."""
    cleaned = text.strip()
    if not cleaned:
        raise PoetstudioError("the rhyme scheme is empty; give letters such as ABAB")
    bad = sorted({ch for ch in cleaned if not (ch.isascii() and ch.isalpha()) and ch not in "- "})
    if bad:
        raise PoetstudioError(
            f"rhyme scheme {text!r} has {''.join(bad)!r}; use letters, - or x, and spaces"
        )
    stanzas = tuple(
        tuple(None if ch in UNRHYMED else ch.upper() for ch in chunk) for chunk in cleaned.split()
    )
    count = sum(len(stanza) for stanza in stanzas)
    if count > MAX_LINES:
        raise PoetstudioError(f"rhyme scheme {text!r} has {count} lines; at most {MAX_LINES}")
    return stanzas


_COUNT = re.compile(r"-?\d+")


def _syllable_number(text: str, spec: str) -> int:
    if not _COUNT.fullmatch(text):
        raise PoetstudioError(
            f"syllables {spec!r}: {text!r} is not a count; give counts or ranges like 10 or 8-9"
        )
    value = int(text)
    if not 1 <= value <= MAX_SYLLABLES:
        raise PoetstudioError(
            f"syllables {spec!r}: {value} is out of range; each count is 1 to {MAX_SYLLABLES}"
        )
    return value


def parse_syllables(text: str) -> tuple[tuple[int, int], ...]:
    """Per-line (low, high) syllable ranges from `10`, `5,7,5` or `8-9,8-9,5-6`."""
    if not text.strip():
        raise PoetstudioError("syllables are empty; give a count such as 10 or 5,7,5")
    ranges = []
    for item in text.split(","):
        part = item.strip()
        low_text, dash, high_text = part.partition("-")
        if dash and low_text.strip():
            low = _syllable_number(low_text.strip(), text)
            high = _syllable_number(high_text.strip(), text)
            if low > high:
                raise PoetstudioError(f"syllables {text!r}: the range {part!r} runs backwards")
        else:
            low = high = _syllable_number(part, text)
        ranges.append((low, high))
    if len(ranges) > MAX_LINES:
        raise PoetstudioError(f"syllables {text!r} list {len(ranges)} lines; at most {MAX_LINES}")
    return tuple(ranges)


def check_meter(name: str) -> str | None:
    """A meter name normalised, or None for `none`/empty; unknown names raise."""
    cleaned = name.strip().lower()
    if cleaned in ("", "none", "free"):
        return None
    if cleaned not in METERS:
        raise PoetstudioError(f"unknown meter {name!r}; choose one of: {', '.join(METERS)}")
    return cleaned


def check_form_name(name: str) -> str:
    """A preset name normalised; unknown names raise."""
    cleaned = name.strip().lower()
    if cleaned not in PRESETS:
        raise PoetstudioError(f"unknown form {name!r}; choose one of: {', '.join(PRESETS)}")
    return cleaned


def parse_form(
    name: str = "free",
    rhyme: str | None = None,
    syllables: str | None = None,
    meter: str | None = None,
) -> Form:
    """The form a preset names, with any of its scheme, syllables or meter replaced."""
    preset_name = check_form_name(name)
    preset = PRESETS[preset_name]
    scheme_text = rhyme if rhyme is not None else preset.scheme
    syllable_text = syllables if syllables is not None else preset.syllables
    meter_text = meter if meter is not None else preset.meter
    stanzas = parse_scheme(scheme_text) if scheme_text is not None else ()
    ranges = parse_syllables(syllable_text) if syllable_text is not None else ()
    meter_name = check_meter(meter_text) if meter_text is not None else None
    lines = sum(len(stanza) for stanza in stanzas)
    if stanzas and ranges and lines % len(ranges):
        fits = ", ".join(str(d) for d in range(1, lines + 1) if lines % d == 0)
        raise PoetstudioError(
            f"{len(ranges)} syllable counts do not fit the scheme's {lines} lines; "
            f"give a list of {fits} counts (a shorter list repeats)"
        )
    if (rhyme, syllables, meter) == (None, None, None):
        label = preset_name
    elif preset_name == "free":
        label = "custom"
    else:
        label = f"{preset_name} (custom)"
    return Form(name=label, stanzas=stanzas, syllables=ranges, meter=meter_name)
