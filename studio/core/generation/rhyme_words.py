"""The words a rhymed line may end on, for one tokenizer: built once and shared by every poem.

Where a rhyme may come from: only words that English verse really ends its lines on
(trainer/common/lineends.py: dictionary words ending at least 50 lines of the training corpus),
spelled by the tokenizer in at most MAX_RHYME_TOKENS tokens, so that no forced rhyme reaches for
"macaroon" or a dictionary fragment ("inter"), and none spelled from a word of its own (" is" +
"abel"). A line may end on a real word (not "re", not "the", not "upon") that has a rhyme among
them; a group's first line on one with at least MIN_RHYMES, so that its partners have a choice.
Each word also carries a prior: PRIOR_WEIGHT times the log of its share of line ends, so that
"night" beats "kite" when the model is unsure.

Building these lists encodes thousands of words and reads the dictionary for each; a quatrain
writes about 30 tokens, so doing it per poem had cost more than the poem's forwards. The lists
depend only on the tokenizer and the rule that says what rhymes, so `rhyme_words` keeps one
`RhymeWords` per token table and rule.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

from studio.core.formtokens import DANGLING, Kind, RhymeTrie, TokenTable, vocabulary_words
from studio.core.generation.vocabulary import per_table
from trainer.common import phonetics
from trainer.common.lineends import line_ends

Rule = Callable[[str, str], bool]

# Rhymes come from the words verse ends its lines on, spelled in at most this many tokens.
MAX_RHYME_TOKENS = 3
# The prior for common rhymes, in nats per nat of log frequency (0.5: a word ending 100 times
# more lines gains 2.3 nats; chosen by reading poems, 0.3 to 1 tried).
PRIOR_WEIGHT = 0.5
# A group's first line ends on a word that shares its rhyming part with at least this many line
# ends, itself included and echoes left out (2 let "roofs / hoofs" and "fury / jury").
MIN_RHYMES = 3
# Marks that close a sentence or break it off.
STOPS = (".", "!", "?", ";", ":", "--", "\u2014", "\u2013")
# Short words a line may end on; other one- and two-letter "words" in the dictionary are mostly
# fragments and abbreviations ("re", "ag"). Function words make weak rhymes that end nothing:
# those that leave a phrase open (formtokens.DANGLING: "the", "and", "who"), and these.
_SHORT_ENDINGS = frozenset({"me", "be", "he", "we", "go", "so", "no", "do", "my", "by", "lo", "oh"})
_NO_ENDINGS = frozenset({"they", "has", "was", "is", "are", "which", "that"})  # "because they"
# Shared lists may outlive many poems; these bound the per-target caches.
_CACHED_TARGETS = 4096
_CACHED_TRIES = 1024


class RhymeWords:
    """The rhyme candidates of one tokenizer under one rule of what rhymes."""

    def __init__(
        self,
        table: TokenTable,
        encode: Callable[[str], Sequence[int]],
        rhymes: Rule,
        slant_below: int = 1,
    ) -> None:
        """`slant_below`: a target with fewer true rhymes than this takes slant rhymes too."""
        self.table = table
        self.rhymes = rhymes
        self.slant_below = slant_below
        self.encode: Callable[[str], tuple[int, ...]] = functools.lru_cache(maxsize=None)(
            lambda text: tuple(encode(text))
        )
        self.slant: Callable[[str], bool] = functools.lru_cache(_CACHED_TARGETS)(self._slant)
        self._answering: Callable[[str | None], tuple[str, ...]] = functools.lru_cache(
            _CACHED_TARGETS
        )(self._answers_to)
        self._sized: Callable[[str | None, int, int], tuple[str, ...]] = functools.lru_cache(
            _CACHED_TARGETS
        )(self._sized_fits)
        self.candidates: Callable[[str | None, int, int, frozenset[str]], tuple[str, ...]] = (
            functools.lru_cache(_CACHED_TRIES)(self._candidates)
        )
        self.trie: Callable[..., RhymeTrie] = functools.lru_cache(_CACHED_TRIES)(self._trie)

    @functools.cached_property
    def words(self) -> list[str]:
        """The words a rhyme may be drawn from: line-ending words the tokenizer spells."""
        common = line_ends()
        spelled = vocabulary_words(self.table, self.encode, common, max_tokens=MAX_RHYME_TOKENS)
        return [word for word in spelled if word in common and not self._trap(word)]

    def _trap(self, word: str) -> bool:
        """Whether `word` is spelled over tokens whose first is a word of its own (" is" +
        "abel", " her" + "cules"): the model takes that token for the short word, and the trie
        would then force the long one onto it."""
        ids = self.encode(" " + word)
        if len(ids) < 2:
            return False
        first = ids[0]
        return self.table.kinds[first] is Kind.WORD and phonetics.is_known(
            self.table.letters[first]
        )

    @functools.cached_property
    def endings(self) -> list[str]:
        """The words a line may end on: real words, not function words, that have a rhyme."""
        usable = [word for word in self.words if real_ending(word)]
        sounds: dict[str, set[str]] = {}
        for word in usable:
            for part in phonetics.rhyme_parts(word):
                sounds.setdefault(part, set()).add(word)
        shared = {part for part, words in sounds.items() if len(words) > 1}
        return [word for word in usable if phonetics.rhyme_parts(word) & shared]

    @functools.cached_property
    def openers(self) -> frozenset[str]:
        """The words a group's first line may end on: endings with at least MIN_RHYMES - 1
        others that rhyme with them and are no echo ("give" has "live", and "forgive" echoes it),
        so that the group's later lines have a choice of perfect rhymes."""
        sounds: dict[str, list[str]] = {}
        for word in self.endings:
            for part in phonetics.rhyme_parts(word):
                sounds.setdefault(part, []).append(word)

        def partners(word: str) -> int:
            near = {other for part in phonetics.rhyme_parts(word) for other in sounds[part]}
            return sum(not phonetics.echoes(other, word) for other in near - {word})

        return frozenset(word for word in self.endings if partners(word) >= MIN_RHYMES - 1)

    @functools.cached_property
    def stops(self) -> tuple[bool, ...]:
        """Per token: whether it closes a sentence or breaks it off (". ; : ! ?" and dashes)."""
        return tuple(any(mark in text for mark in STOPS) for text in self.table.texts)

    @functools.cached_property
    def _top(self) -> float:
        return math.log(max(line_ends().values()))

    def weight(self, word: str) -> float:
        """The prior of `word`: PRIOR_WEIGHT times its log share of the commonest's line ends."""
        return PRIOR_WEIGHT * (math.log(line_ends().get(word, 1)) - self._top)

    def _slant(self, target: str) -> bool:
        """Whether `target` takes slant rhymes: fewer than `slant_below` line ends rhyme with it
        perfectly, echoes aside ("window" has none; "bridge" only "ridge")."""
        true = (
            word
            for word in self.endings
            if self.rhymes(word, target) and not phonetics.echoes(word, target)
        )
        return sum(1 for _ in itertools.islice(true, self.slant_below)) < self.slant_below

    def answers(self, word: str, target: str) -> bool:
        """Whether `word` rhymes with `target` (slant too where it has few perfect rhymes,
        `_slant`), and is not the same sound again ("night / knight")."""
        # The echo test reads every pronunciation's onset: only for the few words that rhyme.
        if self.rhymes(word, target) or (
            self.slant(target) and phonetics.slant_rhymes(word, target)
        ):
            return not phonetics.echoes(word, target)
        return False

    def _answers_to(self, target: str | None) -> tuple[str, ...]:
        """The endings that answer `target`, of any length (openers for None)."""
        if target is None:
            return tuple(word for word in self.endings if word in self.openers)
        return tuple(word for word in self.endings if self.answers(word, target))

    def _sized_fits(self, target: str | None, low: int, high: int) -> tuple[str, ...]:
        """The endings of `low` to `high` syllables that answer `target` (openers for None)."""
        return tuple(
            word
            for word in self._answering(target)
            if any(low <= count <= high for count in phonetics.syllable_counts(word))
        )

    def _candidates(
        self, target: str | None, low: int, high: int, used: frozenset[str]
    ) -> tuple[str, ...]:
        """The words that may end the line: rhyming with `target` (any that can be rhymed with,
        for a group's first line), with `low` to `high` syllables, and not among `used` (the
        poem's line ends so far: "satisfied" twice is no rhyme). A group's first line also
        leaves the sounds of `used` alone, so that a new group brings a new sound."""
        fits = self._sized(target, low, high)
        if target is not None:
            return tuple(word for word in fits if word not in used)
        sounds = frozenset().union(*(phonetics.rhyme_parts(word) for word in used))
        return tuple(w for w in fits if w not in used and not phonetics.rhyme_parts(w) & sounds)

    def _trie(
        self,
        target: str | None,
        low: int,
        high: int,
        used: frozenset[str] = frozenset(),
        beats: frozenset[int] = frozenset(),
        cycle: str | None = None,
    ) -> RhymeTrie:
        """The words that may end the line (`candidates`); with `beats` (where the meter's
        `cycle` lets the word start), only those that keep the meter, if any do."""
        words = self.candidates(target, low, high, used)
        if beats and cycle is not None:
            metered = [w for w in words if any(phonetics.fits_at(w, b, cycle) for b in beats)]
            words = tuple(metered) or words
        return RhymeTrie(words, self.encode)


def real_ending(word: str) -> bool:
    """Whether a line may end on `word`: not a fragment or abbreviation ("re", "ag"), not a
    function word, not a word that leaves its phrase open ("with", "upon")."""
    return (
        (len(word) > 2 or word in _SHORT_ENDINGS)
        and word not in _NO_ENDINGS
        and word not in DANGLING
    )


def rhyme_words(
    table: TokenTable, encode: Any, rhymes: Rule = phonetics.rhymes, slant_below: int = 1
) -> RhymeWords:
    """The shared `RhymeWords` of `table` (whose tokenizer `encode` runs) under `rhymes`."""
    return per_table(
        table,
        ("rhyme words", rhymes, slant_below),
        lambda t: RhymeWords(t, encode, rhymes, slant_below),
    )
