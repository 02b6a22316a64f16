"""How well poems keep a form: rhyme, syllable and meter accuracy, counted so scores pool.

Each poem is scored against its `Form` line by line. A line the form asks for that the poem lacks
counts as missed (a short poem does not score better); lines past a fixed form's end are not
scored, but they keep the poem from being exact. Rhyme pairs where either last word is missing
from the pronouncing dictionary are counted apart (`oov_pairs`), since their rhyme can only be
borrowed from a spelling ending.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from trainer.common import phonetics
from trainer.common.form import METERS, Form


@dataclass(frozen=True)
class FormScore:
    """Counts over one poem or many (add them with `pool`); shares are None when nothing counted."""

    poems: int = 0
    rhyme_pairs: int = 0  # required pairs whose last words are both in the dictionary
    rhymed: int = 0
    oov_pairs: int = 0  # required pairs with an unknown last word
    oov_rhymed: int = 0
    syllable_lines: int = 0  # lines with a syllable target
    syllables_exact: int = 0  # within the target (a range counts as exact)
    syllables_near: int = 0  # within one syllable of the target
    syllable_poems: int = 0  # poems with syllable targets
    syllable_poems_exact: int = 0  # every line exact and no line missing (haiku 5-7-5)
    meter_lines: int = 0
    meter_matched: int = 0

    @property
    def rhyme_accuracy(self) -> float | None:
        """Share of required in-dictionary pairs that rhyme."""
        return _share(self.rhymed, self.rhyme_pairs)

    @property
    def oov_rhyme_accuracy(self) -> float | None:
        """Share of required pairs with an unknown word that rhyme by a borrowed ending."""
        return _share(self.oov_rhymed, self.oov_pairs)

    @property
    def syllable_accuracy(self) -> float | None:
        """Share of lines with exactly their target count."""
        return _share(self.syllables_exact, self.syllable_lines)

    @property
    def syllable_near_accuracy(self) -> float | None:
        """Share of lines within one syllable of their target."""
        return _share(self.syllables_near, self.syllable_lines)

    @property
    def poems_exact(self) -> float | None:
        """Share of poems whose every line meets its count (for haiku: 5-7-5 exact)."""
        return _share(self.syllable_poems_exact, self.syllable_poems)

    @property
    def meter_accuracy(self) -> float | None:
        """Share of metered lines whose stresses fit the meter."""
        return _share(self.meter_matched, self.meter_lines)

    def to_dict(self) -> dict[str, float | int | None]:
        """The counts and the shares, for a report."""
        out: dict[str, float | int | None] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in (
            "rhyme_accuracy",
            "oov_rhyme_accuracy",
            "syllable_accuracy",
            "syllable_near_accuracy",
            "poems_exact",
            "meter_accuracy",
        ):
            out[name] = getattr(self, name)
        return out


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def pool(scores: Iterable[FormScore]) -> FormScore:
    """The sum of many poems' counts."""
    totals = dict.fromkeys((f.name for f in fields(FormScore)), 0)
    for score in scores:
        for name in totals:
            totals[name] += getattr(score, name)
    return FormScore(**totals)


def poem_lines(text: str) -> list[str]:
    """A poem's lines without the blank lines that break its stanzas."""
    return [line for line in text.splitlines() if line.strip()]


def last_word(line: str) -> str | None:
    """The last word of a line (what must rhyme), or None when it has none."""
    words = phonetics.words_of(line)
    return words[-1] if words else None


def _distance(totals: frozenset[int], target: tuple[int, int]) -> int:
    low, high = target
    return min((max(low - t, t - high, 0) for t in totals), default=max(low, 1))


def _nearest(totals: frozenset[int], target: tuple[int, int]) -> int:
    return min(totals, key=lambda total: (_distance(frozenset({total}), target), total))


@dataclass(frozen=True)
class LineMark:
    """How one line meets its form, for showing beside it: its syllables (the count nearest its
    target), its rhyme letter, and whether it misses its syllable target or its rhyme."""

    syllables: int
    rhyme: str | None
    missed: bool


def line_marks(lines: Sequence[str], form: Form, slant: bool = False) -> list[LineMark]:
    """A mark per line (stanza breaks already removed), by the same rules as `score_poem`: a
    word with several pronunciations meets a count if any does; a rhymed line must rhyme with
    its group's first line."""
    rhyme = phonetics.slant_rhymes if slant else phonetics.rhymes
    marks = []
    for index, line in enumerate(lines):
        target = form.line(index)
        totals = phonetics.line_syllables(phonetics.words_of(line))
        missed = False
        if target.syllables is not None:
            count = _nearest(totals, target.syllables)
            missed = _distance(totals, target.syllables) > 0
        else:
            count = min(totals)
        if target.rhymes_with is not None:
            first, second = last_word(lines[target.rhymes_with]), last_word(line)
            missed |= first is None or second is None or not rhyme(first, second)
        marks.append(LineMark(syllables=count, rhyme=target.rhyme, missed=missed))
    return marks


def score_poem(lines: Sequence[str], form: Form, slant: bool = False, given: int = 0) -> FormScore:
    """Score one poem's lines (stanza breaks already removed) against `form`; with `slant`, a
    slant rhyme (same stressed vowel or same final consonants) counts as a rhyme.

    The first `given` lines were typed (a first line): their syllables and meter are the
    writer's, so only the lines after them are scored for those; a rhyme pair with a typed line
    still counts, since the model had to rhyme with it."""
    rhyme = phonetics.slant_rhymes if slant else phonetics.rhymes
    count = form.line_count if form.line_count is not None else len(lines)
    rhyme_pairs = rhymed = oov_pairs = oov_rhymed = 0
    for earlier, later in form.rhyme_pairs():
        first, second = (last_word(lines[i]) if i < len(lines) else None for i in (earlier, later))
        if first is not None and second is not None and phonetics.is_oov_pair(first, second):
            oov_pairs += 1
            oov_rhymed += rhyme(first, second)
        else:
            rhyme_pairs += 1
            rhymed += first is not None and second is not None and rhyme(first, second)
    syllable_lines = exact = near = meter_lines = meter_matched = 0
    for index in range(given, count):
        target = form.line(index)
        words = phonetics.words_of(lines[index]) if index < len(lines) else None
        if target.syllables is not None:
            syllable_lines += 1
            if words is not None:
                distance = _distance(phonetics.line_syllables(words), target.syllables)
                exact += distance == 0
                near += distance <= 1
        if form.meter is not None:
            meter_lines += 1
            meter_matched += bool(words) and phonetics.fits_meter(words or [], METERS[form.meter])
    has_targets = syllable_lines > 0
    return FormScore(
        poems=1,
        rhyme_pairs=rhyme_pairs,
        rhymed=rhymed,
        oov_pairs=oov_pairs,
        oov_rhymed=oov_rhymed,
        syllable_lines=syllable_lines,
        syllables_exact=exact,
        syllables_near=near,
        syllable_poems=int(has_targets),
        syllable_poems_exact=int(has_targets and exact == syllable_lines and len(lines) == count),
        meter_lines=meter_lines,
        meter_matched=meter_matched,
    )


def score_poems(
    poems: Iterable[Sequence[str]], form: Form, slant: bool = False, given: Sequence[int] = ()
) -> FormScore:
    """Pooled scores of many poems against one form; `given[i]` typed lines lead poem i (none
    where the sequence is shorter)."""
    return pool(
        score_poem(lines, form, slant, given[i] if i < len(given) else 0)
        for i, lines in enumerate(poems)
    )
