"""Cutting a stream of verse lines into poems: the seed's `autocompose` split and the `clean` one.

`autocompose` reproduces the seed exactly: join every line, split after each line that ends with
".", keep chunks of more than 2 lines, then (for training) only those under 100 words.

`clean` is poetstudio's default. It was designed by reading the real corpus:
- A chunk never crosses a book (`gid`) boundary, and when the source marks its poems (plain-text
  sources, blank lines between poems) each marked poem is one chunk.
- Gutenberg noise never enters a poem. Editors' notes (indented lines, bracketed lines, lines
  naming a footnote or the transcriber), layout (runs of 8+ spaces: contents, running heads),
  lines holding digits (index entries, dates, page and verse references), all-caps headings and
  empty lines are dropped and end the chunk they interrupt. Inline footnote markers such as "(103)"
  and "_italic_" underscores are stripped from verse lines.
- A chunk closes at the first line ending a sentence (".", "!" or "?", maybe followed by a closing
  quote or bracket) once it has at least `min_lines` lines, so poems are whole sentences instead of
  the seed's many two-line fragments.
- Then chunk rules, in order, each counted: too short, too long (lines or words), prose (editors'
  introductions wrapped at Gutenberg's ~70 columns: long lines, most continuing in lowercase),
  not English (too few English function words, or too many non-ASCII letters: Latin, Greek,
  Spanish, Middle English), and exact duplicates.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate

from trainer.corpus.sources import Corpus


@dataclass(slots=True)
class Chunk:
    """One poem candidate: its text (lines joined by newlines) and its book id if known."""

    text: str
    gid: str | None
    lines: int
    words: int


@dataclass
class SplitStats:
    """What a split did: chunks found, and how many each rule removed, in the order applied."""

    split: str
    input_lines: int
    chunks: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    lines_dropped: dict[str, int] = field(default_factory=dict)
    lines_cleaned: dict[str, int] = field(default_factory=dict)
    kept: int = 0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for the dataset manifest."""
        return {
            "split": self.split,
            "input_lines": self.input_lines,
            "chunks": self.chunks,
            "removed": dict(self.removed),
            "lines_dropped": dict(self.lines_dropped),
            "lines_cleaned": dict(self.lines_cleaned),
            "kept": self.kept,
        }


# --- autocompose -------------------------------------------------------------------------------

AUTOCOMPOSE_MAX_WORDS = 100

AUTOCOMPOSE_RULES = {
    "join": "all lines joined with newlines, book ids ignored",
    "split": 'after every line that ends with "." (the "." is kept)',
    "keep": "chunks of more than 2 lines",
    "max_words": f"fewer than {AUTOCOMPOSE_MAX_WORDS} whitespace-separated words",
}


def split_autocompose(corpus: Corpus) -> tuple[list[Chunk], SplitStats]:
    """The seed's split, reproduced exactly.

    Book ids play no part in the cut; a chunk that stays within one book is annotated with it.
    """
    lines = corpus.lines
    gids = corpus.gids
    stats = SplitStats("autocompose", len(lines))
    content = "\n".join(lines) + "\n" if lines else ""
    parts = content.split(".\n")
    stats.chunks = len(parts)
    short = long = 0
    chunks: list[Chunk] = []
    start = 0
    for part in parts:
        newlines = part.count("\n")
        first, last = start, start + newlines
        start = last + 1
        if newlines < 2:  # the seed keeps len(part.split("\n")) > 2
            short += 1
            continue
        text = part + "."
        words = len(text.split())
        if words >= AUTOCOMPOSE_MAX_WORDS:
            long += 1
            continue
        gid = gids[first] if gids[first] == gids[min(last, len(gids) - 1)] else None
        chunks.append(Chunk(text, gid, newlines + 1, words))
    stats.removed = {"2 lines or fewer": short, f"{AUTOCOMPOSE_MAX_WORDS} words or more": long}
    stats.kept = len(chunks)
    return chunks, stats


# --- clean -------------------------------------------------------------------------------------

MIN_LINES = 4
MAX_LINES = 20
MIN_WORDS = 12
MAX_WORDS = 160
PROSE_LINE_CHARS = 58
PROSE_MEAN_CHARS = 45
MIN_ENGLISH_SHARE = 0.14
MAX_FOREIGN_LETTERS = 0.04

CLEAN_RULES = {
    "boundaries": "book id changes, poem breaks marked by the source, noise lines",
    "noise_lines": (
        "notes (indented, bracketed, 'Footnote', 'Transcriber'), layout runs of 8+ spaces, "
        "lines with digits, all-caps headings, blanks"
    ),
    "inline": "footnote markers like (103) or [12] and _italic_ underscores are stripped",
    "close": f"at the first sentence-ending line once a chunk has {MIN_LINES}+ lines",
    "lines": [MIN_LINES, MAX_LINES],
    "words": [MIN_WORDS, MAX_WORDS],
    "prose": (
        f"every line at least {PROSE_LINE_CHARS} characters, or a mean of {PROSE_MEAN_CHARS}+ "
        "with most lines continuing in lowercase (wrapped prose)"
    ),
    "english": (
        f"at least {MIN_ENGLISH_SHARE:.0%} English function words and at most "
        f"{MAX_FOREIGN_LETTERS:.0%} non-ASCII letters"
    ),
    "duplicates": "exact duplicates (case and spacing ignored) are kept once",
}

# Lines that need a closer look (about 1% of the real corpus), found by scanning the joined text
# once per pattern instead of testing three million lines one by one in Python.
_SUSPECT_PATTERNS = (
    re.compile(r"[\d_]"),
    re.compile(r"^[ \t\[]", re.MULTILINE),
    re.compile(r"^[^a-z\n]*$", re.MULTILINE),
    re.compile(r"\]$|[Ff]ootnote|[Tt]ranscriber| {8,}", re.MULTILINE),
)
_MARKER = re.compile(r"\s?[(\[{]\d+[)\]}]")
_NO_LOWER = re.compile(r"[^a-z]*")
_SENTENCE_ENDS = tuple(
    end + close for end in ".!?" for close in ("", '"', "'", "\u201d", "\u2019", ")", "]", "'\"")
)
_PUNCTUATION = str.maketrans(
    dict.fromkeys('!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\u2014\u2018\u201c\u201d', " ")
)
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
# Common English function words, old forms included: verse of every century uses them heavily,
# while Latin, French, German, Spanish and Italian verse almost never does.
_ENGLISH_WORDS = """
    a about all am an and are as at be been but by did do does doth for from had has hast hath
    he her him his how i if in into is it its let me my nay no nor not now o of oh on or our
    out shall she so than that the thee their them then there these they thine this those thou
    through thy to too till unto up upon us was we were what when where which while who whom
    why will with would ye yet you your
"""
_ENGLISH = frozenset(_ENGLISH_WORDS.split())


def _noise_kind(line: str) -> str | None:
    """Which noise rule a suspect line falls under, or None when it is verse after all."""
    if not line.strip():
        return "empty"
    if line[0].isspace() or line.startswith("[") or "ootnote" in line or "ranscriber" in line:
        return "note"
    if line.endswith("]") and "[" not in line:
        return "note"  # the last line of a bracketed note
    if " " * 8 in line:  # shorter runs are the caesura of Old English verse translations
        return "layout"  # contents tables and running heads: "INTRODUCTION      page xi"
    if any(ch.isdigit() for ch in line):
        return "digits"
    if _NO_LOWER.fullmatch(line) and _ASCII_LETTER.search(line):
        return "heading"
    return None


def _is_prose(lines: list[str]) -> bool:
    """Wrapped prose: all lines long, or long on average with most lines running on in lowercase."""
    lengths = [len(line) for line in lines]
    if min(lengths) >= PROSE_LINE_CHARS:
        return True
    run_on = sum(1 for line in lines[1:] if line[:1].islower())
    return sum(lengths) >= PROSE_MEAN_CHARS * len(lines) and 2 * run_on >= len(lines) - 1


def _is_english(text: str, words: int) -> bool:
    tokens = text.lower().translate(_PUNCTUATION).split()
    if sum(map(_ENGLISH.__contains__, tokens)) < MIN_ENGLISH_SHARE * max(words, 1):
        return False
    if text.isascii():
        return True
    letters = _LETTER.findall(text)
    foreign = len(letters) - len(_ASCII_LETTER.findall(text))
    return foreign <= MAX_FOREIGN_LETTERS * len(letters)


def _suspect_lines(lines: list[str]) -> list[int]:
    """Indexes of lines that may be noise or need inline cleaning, in order."""
    content = "\n".join(lines)
    starts = [0, *accumulate(len(line) + 1 for line in lines)]
    found: set[int] = set()
    for pattern in _SUSPECT_PATTERNS:
        found.update(bisect_right(starts, match.start()) - 1 for match in pattern.finditer(content))
    return sorted(found)


def _clean_segments(corpus: Corpus, stats: SplitStats) -> list[tuple[list[str], str | None]]:
    """Cut the stream into raw chunks at boundaries and sentence ends, dropping noise lines."""
    dropped = {"note": 0, "layout": 0, "digits": 0, "heading": 0, "empty": 0}
    cleaned = {"footnote marker": 0, "underscore": 0}
    lines = list(corpus.lines)
    gids = corpus.gids
    # Events, in line order: a hard break before a line (book change or noise line, which is
    # dropped) or a sentence end after a line (which closes a chunk that is long enough).
    noise: set[int] = set()
    for index in _suspect_lines(lines):
        line = lines[index]
        if "(" in line or "[" in line or "{" in line:
            stripped = _MARKER.sub("", line)
            if stripped != line:
                cleaned["footnote marker"] += 1
                line = stripped
        kind = _noise_kind(line)
        if kind is not None:
            dropped[kind] += 1
            noise.add(index)
            continue
        if "_" in line:
            cleaned["underscore"] += 1
            line = line.replace("_", "")
        lines[index] = line.rstrip()
    breaks = set(noise)
    if gids.count(None) != len(gids):
        breaks.update(i for i in range(1, len(gids)) if gids[i] != gids[i - 1])
    ends: list[int] = []
    if not corpus.marked_poems:
        ends = [i for i, line in enumerate(lines) if line.endswith(_SENTENCE_ENDS)]
    events = sorted([(i, 0) for i in breaks] + [(i, 1) for i in ends])
    segments: list[tuple[list[str], str | None]] = []
    start = 0
    for index, is_end in events:
        if not is_end:
            if index > start:
                segments.append((lines[start:index], gids[start]))
            start = index + 1 if index in noise else index
        elif index >= start and index + 1 - start >= MIN_LINES and index not in noise:
            segments.append((lines[start : index + 1], gids[start]))
            start = index + 1
    if start < len(lines):
        segments.append((lines[start:], gids[start]))
    stats.lines_dropped = dropped
    stats.lines_cleaned = cleaned
    return segments


def split_clean(corpus: Corpus) -> tuple[list[Chunk], SplitStats]:
    """poetstudio's default split (see the module docstring for the rules)."""
    stats = SplitStats("clean", len(corpus.lines))
    segments = _clean_segments(corpus, stats)
    stats.chunks = len(segments)
    removed = dict.fromkeys(("too short", "too long", "prose", "not English", "duplicate"), 0)
    seen: set[str] = set()
    chunks: list[Chunk] = []
    for lines, gid in segments:
        count = len(lines)
        if count < MIN_LINES:
            removed["too short"] += 1
            continue
        text = "\n".join(lines)
        words = len(text.split())
        if count > MAX_LINES or words > MAX_WORDS or words < MIN_WORDS:
            removed["too long" if words >= MIN_WORDS else "too short"] += 1
            continue
        if _is_prose(lines):
            removed["prose"] += 1
            continue
        if not _is_english(text, words):
            removed["not English"] += 1
            continue
        key = " ".join(text.lower().split())
        if key in seen:
            removed["duplicate"] += 1
            continue
        seen.add(key)
        chunks.append(Chunk(text, gid, count, words))
    stats.removed = removed
    stats.kept = len(chunks)
    return chunks, stats


SPLITS: dict[str, Callable[[Corpus], tuple[list[Chunk], SplitStats]]] = {
    "clean": split_clean,
    "autocompose": split_autocompose,
}
SPLIT_RULES: dict[str, Mapping[str, object]] = {
    "clean": CLEAN_RULES,
    "autocompose": AUTOCOMPOSE_RULES,
}


def split_poems(corpus: Corpus, split: str) -> tuple[list[Chunk], SplitStats]:
    """Cut `corpus` into poems with the named split ("clean" or "autocompose")."""
    return SPLITS[split](corpus)
