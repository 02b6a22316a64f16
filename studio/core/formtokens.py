"""What a form constraint needs to know about a tokenizer's vocabulary, for decode-time masks.

Independent of the generation engine: built from the token texts and an `encode` function, it
answers in token ids and per-token masks, which a processor turns into tensors once.

- `TokenTable`: each token's decoded text, kind (a word start, a piece continuing a word, a line
  or stanza break, punctuation, other), its letters and their syllables.
- `budget_mask`: a syllable budget per line. Finished words' syllables are counted (any CMU
  pronunciation), a word may start only if its first token's syllables fit what is left, the
  newline only once some reading of the line meets the target, and once the budget is met only
  punctuation (once) and the newline may follow. A word that grows past the budget after its
  first token is caught by the eval, not here: the rule is deliberately simple and cheap (one
  cached mask per budget state).
- `meter_mask`: for a soft meter score, the word starts that keep the line on its beat.
- `form_position`: where a poem's text stands in its form (which line, what it must meet, the
  word it must rhyme with, whether a stanza break is due).
- `RhymeTrie`: the tokenisations of the words that may end a line (those rhyming with its target
  that fit the syllables left); given the tokens of the last word so far, the allowed next tokens
  and whether the word may end now.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.common import phonetics
from trainer.common.form import Form, LineTarget

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Encode = Callable[[str], Sequence[int]]

_LETTERS = re.compile(r"'?[a-z]+(?:'[a-z]+)*'?")
# SentencePiece marks a word start with this; decoding a lone piece may drop the space.
_SPIECE_SPACE = "\u2581"


class Kind(enum.Enum):
    """What a token does to the line being written."""

    WORD = "word"  # whitespace, then letters: starts a new word
    PIECE = "piece"  # letters straight away: continues the word (or starts one at a boundary)
    NEWLINE = "newline"  # ends the line: one line break, perhaps after punctuation (",\n")
    STANZA = "stanza"  # ends the line and the stanza: a blank line ("\n\n", ".\n\n")
    PUNCT = "punct"  # punctuation or spaces only: ends a word, adds no syllables
    OTHER = "other"  # digits, other scripts, byte fragments, a break mixed with other text
    SPECIAL = "special"  # the tokenizer's special tokens (end of text): the engine decides
    UNUSED = "unused"  # ids past the tokenizer's vocabulary (padded embeddings): never chosen


_NEWLINE = re.compile(r"[^\w\s]*[ \t]*\n")
_STANZA = re.compile(r"[^\w\s]*[ \t]*\n(?:[ \t]*\n)+")


def classify(text: str) -> tuple[Kind, str]:
    """A token's kind and the lowercase letters it adds to a word ('' when none)."""
    if "\n" in text:
        if _NEWLINE.fullmatch(text):
            return Kind.NEWLINE, ""
        if _STANZA.fullmatch(text):
            return Kind.STANZA, ""
        return Kind.OTHER, ""  # an indented next line, or text after the break
    stripped = text.lstrip()
    lowered = stripped.lower().replace("\u2019", "'")
    match = _LETTERS.match(lowered)
    if match is None:
        # Digits have syllables the count misses; a lone byte of a multi-byte character
        # decodes to U+FFFD and may complete to a letter the count never saw.
        if not text or "\ufffd" in text or any(ch.isalnum() for ch in stripped):
            return Kind.OTHER, ""
        return Kind.PUNCT, ""
    rest = lowered[match.end() :]
    if "\ufffd" in rest or any(ch.isalnum() for ch in rest):
        return Kind.OTHER, ""  # letters mixed with digits or other scripts
    kind = Kind.WORD if stripped != text else Kind.PIECE
    return kind, match.group()


# Punctuation that may close a line: no dash, hyphen or quote that may open ("bare-", "from '").
CLOSING = frozenset(".,;:!?\u2019\u201d)")
# Words that leave a phrase open, so a line that must stop cannot stop on them ("born of").
DANGLING = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "with",
        "in",
        "into",
        "from",
        "by",
        "for",
        "and",
        "or",
        "nor",
        "but",
        "at",
        "on",
        "as",
        "upon",
        "unto",
        "onto",
        "than",
        "their",
        "his",
        "her",
        "my",
        "your",
        "our",
        "its",
        "whose",
        "who",
        "whom",
        "thy",
        "thine",
    ]
)


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Per-token facts for a whole vocabulary, indexed by token id (compared by identity)."""

    texts: tuple[str, ...]
    kinds: tuple[Kind, ...]
    letters: tuple[str, ...]  # lowercase letters the token adds to a word
    syllables: tuple[int, ...]  # the fewest syllables of its letters read as a whole word
    ends_word: tuple[bool, ...]  # something follows its letters (punctuation, a space)

    @classmethod
    def from_texts(cls, texts: Sequence[str], special: Iterable[int] = ()) -> TokenTable:
        """Build from each token's decoded text (with its leading space, if any)."""
        specials = set(special)
        kinds, letters, syllables, ends = [], [], [], []
        for token_id, text in enumerate(texts):
            kind, found = classify(text)
            if token_id in specials:
                kind, found = Kind.SPECIAL, ""
            kinds.append(kind)
            letters.append(found)
            syllables.append(min(phonetics.syllable_counts(found), default=0) if found else 0)
            stripped = text.lstrip().lower().replace("\u2019", "'")
            ends.append(bool(found) and len(stripped) > len(found))
        return cls(tuple(texts), tuple(kinds), tuple(letters), tuple(syllables), tuple(ends))

    @classmethod
    def from_tokenizer(
        cls, tokenizer: PreTrainedTokenizerBase, vocab_size: int | None = None
    ) -> TokenTable:
        """Build from a transformers tokenizer; ids up to `vocab_size` (the model's, which may
        be padded past the tokenizer's) beyond its vocabulary are UNUSED."""
        size = len(tokenizer)
        ids = list(range(size))
        pieces = tokenizer.convert_ids_to_tokens(ids)
        texts = tokenizer.batch_decode(
            [[i] for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        fixed = []
        for piece, text in zip(pieces, texts, strict=True):
            if isinstance(piece, str) and piece.startswith(_SPIECE_SPACE) and text[:1] != " ":
                text = " " + text
            fixed.append(text)
        table = cls.from_texts(fixed, special=tokenizer.all_special_ids)
        return table.padded(vocab_size) if vocab_size is not None else table

    def padded(self, vocab_size: int) -> TokenTable:
        """The table grown to `vocab_size` ids, the extra ones UNUSED."""
        extra = vocab_size - len(self.texts)
        if extra <= 0:
            return self
        return TokenTable(
            self.texts + ("",) * extra,
            self.kinds + (Kind.UNUSED,) * extra,
            self.letters + ("",) * extra,
            self.syllables + (0,) * extra,
            self.ends_word + (False,) * extra,
        )

    def __len__(self) -> int:
        return len(self.texts)

    @functools.cached_property
    def per_token(self) -> tuple[tuple[Kind, int], ...]:
        """(kind, syllables) per token id, for building masks."""
        return tuple(zip(self.kinds, self.syllables, strict=True))

    @functools.cached_property
    def closers(self) -> tuple[bool, ...]:
        """Per token id: punctuation made only of `CLOSING` marks, which may close a line."""
        return tuple(
            kind is Kind.PUNCT and bool(text.strip()) and set(text.strip()) <= CLOSING
            for kind, text in zip(self.kinds, self.texts, strict=True)
        )

    @functools.cached_property
    def dangling(self) -> tuple[bool, ...]:
        """Per token id: its letters are a `DANGLING` word, as a word start or a piece (a piece
        starts a word after a mark: "true,--a")."""
        return tuple(
            kind in (Kind.WORD, Kind.PIECE) and letters in DANGLING
            for kind, letters in zip(self.kinds, self.letters, strict=True)
        )

    @functools.cached_property
    def mask_cache(self) -> dict[BudgetStep, tuple[bool, ...]]:
        """Budget masks built so far (see `budget_mask`)."""
        return {}

    @functools.cached_property
    def meter_cache(self) -> dict[tuple[frozenset[int], str, bool], tuple[bool, ...]]:
        """Meter masks built so far (see `meter_mask`)."""
        return {}

    def ids_of(self, *kinds: Kind) -> tuple[int, ...]:
        """The ids of every token of the given kinds, ascending."""
        wanted = set(kinds)
        return tuple(i for i, kind in enumerate(self.kinds) if kind in wanted)

    @functools.cached_property
    def single_token_words(self) -> tuple[str, ...]:
        """Lowercase dictionary words that are one word-start token (" night"): the common words
        a rhyme can be drawn from without spelling them over several tokens; in id order."""
        found: dict[str, None] = {}
        for token_id, kind in enumerate(self.kinds):
            word = self.letters[token_id]
            if (
                kind is Kind.WORD
                and not self.ends_word[token_id]
                and self.texts[token_id].lstrip()[:1].islower()
                and _plausible_word(word)
            ):
                found.setdefault(word, None)
        return tuple(found)


# The dictionary spells letters and abbreviations as words ("t", "st"); a rhyme needs a real one.
_ONE_LETTER_WORDS = frozenset({"a", "i", "o"})


def is_fragment(word: str) -> bool:
    """Whether the letters of a word being written are no word yet, though the dictionary may
    spell letters and abbreviations as words ("f" as "eff", "th", "st", "qu"): a lone letter
    other than "a", "i" and "o", or letters with no vowel (the u of "qu" is none), unless an
    apostrophe closes an elision ("th'")."""
    if not word or word.endswith(("'", "\u2019")):
        return False
    if len(word) == 1:
        return word not in _ONE_LETTER_WORDS
    return not re.search(r"[aeiouy]", word.replace("qu", ""))


def _plausible_word(word: str) -> bool:
    return not is_fragment(word) and phonetics.is_known(word)


def vocabulary_words(
    table: TokenTable,
    encode: Encode,
    extra: Iterable[str] = (),
    max_tokens: int = 2,
    limit: int | None = None,
) -> list[str]:
    """Rhyme candidates: the table's single-token words, plus `extra` words that the tokenizer
    spells (after a space) in at most `max_tokens` tokens and the dictionary knows.

    `limit` keeps only the first that many single-token words in id order: BPE merges come
    roughly in order of frequency, so the rarer words a forced rhyme reaches for ("samurai",
    "fiberglass") sit at the end.
    """
    single = table.single_token_words
    words = dict.fromkeys(single if limit is None else single[:limit])
    for raw in extra:
        word = phonetics.normalize(raw)
        if not word or word in words or not _plausible_word(word):
            continue
        ids = encode(" " + word)
        # The tokens must spell the word itself: a tokenizer may drop what it cannot spell.
        spelled = "".join(table.texts[i] for i in ids if 0 <= i < len(table)).strip().lower()
        if 0 < len(ids) <= max_tokens and spelled == word:
            words[word] = None
    return list(words)


@dataclass(frozen=True)
class FormPosition:
    """Where the text written so far stands in its form."""

    line: LineTarget  # the targets of the line being written
    text: str  # that line so far (after the last newline)
    rhyme_word: str | None  # the last word of the line it must rhyme with, when there is one
    break_due: bool  # a stanza ends on the previous line and no blank line follows it yet
    finished: bool  # a fixed form has all its lines: the poem should end


def form_position(poem: str, form: Form) -> FormPosition:
    """Read the poem's text (the typed first line included) against `form`.

    Lines are the non-empty lines, as the studio counts them; the line being written is the text
    after the last newline, so a first line that breaks the form still counts as line one and its
    last word becomes its group's rhyme target.
    """
    *before, current = poem.split("\n")
    done = [line for line in before if line.strip()]
    index = len(done)
    target = form.line(index)
    rhyme_word = None
    if target.rhymes_with is not None:
        words = phonetics.words_of(done[target.rhymes_with])
        rhyme_word = words[-1] if words else None
    previous_ends_stanza = index > 0 and form.line(index - 1).ends_stanza
    blank_follows = bool(before) and not before[-1].strip()
    count = form.line_count
    return FormPosition(
        line=target,
        text=current,
        rhyme_word=rhyme_word,
        break_due=previous_ends_stanza and not current and not blank_follows,
        finished=count is not None and index >= count,
    )


@dataclass(frozen=True)
class LineState:
    """The syllables of the line written so far."""

    done: frozenset[int]  # totals the finished words can reach
    partial: str  # the letters of the word still being written ('' at a word boundary)
    ends_with_punct: bool  # the line's last character is punctuation


def line_state(text: str) -> LineState:
    """Where the current line stands; `text` is the line so far (after the last newline)."""
    words = phonetics.words_of(text)
    stripped = text.rstrip()
    at_boundary = not text or not (text[-1].isalpha() or text[-1] in "'\u2019")
    partial = "" if at_boundary or not words else words[-1]
    finished = words if not partial else words[:-1]
    return LineState(
        done=phonetics.line_syllables(finished),
        partial=partial,
        ends_with_punct=bool(stripped) and not stripped[-1].isalnum(),
    )


@dataclass(frozen=True)
class BudgetStep:
    """What the syllable budget allows next."""

    room: int  # the most syllables a new word may have (0: no new word)
    can_end: bool  # some reading of the line meets the target: a newline is allowed
    must_end: bool  # no new word fits: only punctuation (once) and the newline
    word_open: bool  # the partial word is not a dictionary word yet, so it may still grow
    punct_ok: bool  # punctuation is allowed
    at_boundary: bool  # no partial word: a letters-first piece starts a new word
    stanza_end: bool  # the line ends its stanza: a blank-line token may end it
    fragment: bool = False  # the partial word is a lone letter ("f"): only its spelling goes on


def budget_step(state: LineState, target: tuple[int, int], stanza_end: bool = False) -> BudgetStep:
    """The budget's decision for the next token of a line with `target` (low, high) syllables;
    `stanza_end` when the line is its stanza's last (`LineTarget.ends_stanza`).

    The partial word counts as finished (its fewest syllables), since a new word ends it; but a
    fragment (`is_fragment`) is no word of verse, so it counts for nothing and must go on
    spelling: no line ends "and f." or "be qu".
    """
    low, high = target
    totals = state.done
    fragment = is_fragment(state.partial)
    if state.partial and not fragment:
        counts = phonetics.syllable_counts(state.partial)
        totals = frozenset(t + c for t in totals for c in counts) if counts else totals
    room = max(high - min(totals, default=0), 0)
    can_end = any(low <= t <= high for t in totals)
    must_end = room == 0
    word_open = bool(state.partial) and (fragment or not phonetics.is_known(state.partial))
    return BudgetStep(
        room=room,
        can_end=can_end,
        must_end=must_end,
        word_open=word_open,
        punct_ok=not fragment and not (must_end and state.ends_with_punct),
        at_boundary=not state.partial,
        stanza_end=stanza_end,
        fragment=fragment,
    )


def budget_mask(table: TokenTable, step: BudgetStep) -> tuple[bool, ...]:
    """Which tokens the budget allows (True) in this step, one flag per token id; cached per
    table and step, since a line passes through few distinct steps."""
    cache = table.mask_cache
    mask = cache.get(step)
    if mask is None:
        mask = cache[step] = tuple(_allowed(kind, syl, step) for kind, syl in table.per_token)
    return mask


def _allowed(kind: Kind, syllables: int, step: BudgetStep) -> bool:
    if kind is Kind.WORD or (kind is Kind.PIECE and step.at_boundary):
        return step.room > 0 and syllables <= step.room and not step.fragment
    if kind is Kind.PIECE:
        return not step.must_end or step.word_open
    if kind is Kind.NEWLINE or (kind is Kind.STANZA and step.stanza_end):
        return step.must_end or (step.can_end and not step.word_open)
    if kind is Kind.PUNCT:
        return step.punct_ok
    # A blank line inside a stanza, digits, fragments, unused ids; and special tokens, which
    # would end the poem mid-form or write markup into it: the engine lets the end through
    # once the form is complete.
    return False


def meter_positions(text: str, cycle: str) -> frozenset[int]:
    """The beats where the next word may start after the line so far (`text`), read on `cycle`
    ("01" iambic); empty when the line already breaks the meter."""
    return phonetics.meter_positions(phonetics.words_of(text), cycle)


def meter_mask(
    table: TokenTable, positions: frozenset[int], cycle: str, at_boundary: bool
) -> tuple[bool, ...]:
    """Which tokens keep the meter (True), one flag per token id, for a soft meter score: a token
    that starts a word fits if its letters, read as a word, fit the beat at one of `positions`.
    Tokens that start no word (pieces inside a word, punctuation, breaks) are always True; with
    no positions left (the line already broke the meter) every token is True. Cached."""
    key = (positions, cycle, at_boundary)
    mask = table.meter_cache.get(key)
    if mask is None:
        flags = []
        for kind, letters in zip(table.kinds, table.letters, strict=True):
            starts = kind is Kind.WORD or (kind is Kind.PIECE and at_boundary)
            ok = (
                not starts
                or not positions
                or any(phonetics.fits_at(letters, p, cycle) for p in positions)
            )
            flags.append(ok)
        mask = table.meter_cache[key] = tuple(flags)
    return mask


@dataclass
class _Node:
    children: dict[int, _Node]
    word: str | None = None  # the word spelled when this node ends one


class RhymeTrie:
    """A trie over the tokenisations of the words that may end a line.

    Each word is encoded after a space (" night"), as it follows the line's previous word; the
    tokenizer's own spelling of it is the one path allowed.
    """

    def __init__(self, words: Iterable[str], encode: Encode, prefix: str = " ") -> None:
        self._root = _Node({})
        self.words: list[str] = []
        for word in words:
            ids = list(encode(prefix + word))
            if not ids:
                continue
            node = self._root
            for token_id in ids:
                node = node.children.setdefault(token_id, _Node({}))
            if node.word is None:
                node.word = word
                self.words.append(word)

    def __bool__(self) -> bool:
        return bool(self._root.children)

    def _walk(self, prefix: Sequence[int]) -> _Node | None:
        node: _Node | None = self._root
        for token_id in prefix:
            if node is None:
                return None
            node = node.children.get(token_id)
        return node

    def step(self, prefix: Sequence[int]) -> tuple[tuple[int, ...], bool]:
        """Given the last word's tokens so far, the allowed next token ids (ascending) and
        whether the word may end here. A prefix off the trie allows nothing and cannot end."""
        node = self._walk(prefix)
        if node is None:
            return (), False
        return tuple(sorted(node.children)), node.word is not None

    def best_below(self, prefix: Sequence[int], weight: Callable[[str], float]) -> dict[int, float]:
        """For each token allowed after `prefix`, the highest `weight` of the words it leads to:
        how a forced choice can prefer the common rhymes over the rare ones."""
        node = self._walk(prefix)
        if node is None:
            return {}
        return {token: _best(child, weight) for token, child in node.children.items()}

    def word_at(self, prefix: Sequence[int]) -> str | None:
        """The word these tokens spell, if they spell one of the trie's words."""
        node = self._walk(prefix)
        return node.word if node is not None else None


def _best(node: _Node, weight: Callable[[str], float]) -> float:
    here = weight(node.word) if node.word is not None else float("-inf")
    return max([here, *(_best(child, weight) for child in node.children.values())])


def word_enders(table: TokenTable) -> tuple[int, ...]:
    """Tokens that may follow a finished rhyme word without extending it: line and stanza
    breaks and punctuation (intersect with the budget mask, which knows where a stanza ends)."""
    return table.ids_of(Kind.NEWLINE, Kind.STANZA, Kind.PUNCT)


def rhyme_targets(
    index: phonetics.RhymeIndex,
    target_word: str,
    syllables_left: Iterable[int] | None = None,
    slant: bool = False,
) -> list[str]:
    """The words that may end a line that must rhyme with `target_word`: rhymes from `index`
    (a `RhymeIndex` over `vocabulary_words`) with a syllable count in `syllables_left`."""
    return index.rhymes_for(target_word, syllables=syllables_left, slant=slant)
