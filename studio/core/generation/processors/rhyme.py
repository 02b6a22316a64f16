"""The rhyme target: a line that must rhyme ends on a word that rhymes with its group's first line,
and a group's first line ends on a word that has rhymes (not "the", not a word left alone).

When the line's last word is due, only the tokens that spell a rhyming word may come, along the
tokenizer's own spelling of it (studio/core/formtokens.py's `RhymeTrie`), until the word is whole.
The last word is due when the syllables left fit one word of at most MAX_RHYME_SYLLABLES (a line
with a syllable count). A line without one is steered softly: from MIN_WORDS_BEFORE_RHYME words
on, the first tokens of rhyming words get RHYME_BONUS at each word start, so the model may take a
rhyme where it fits; it comes for certain at the first word start where the model ranks one among
its FIT_RANK likeliest tokens (a bound that widens with each word), so that it stands where it
fits; such a line may not end unrhymed, nor close a sentence before its rhyme (". ; : ! ?" and
dashes), and the rhyme is forced only as a last resort (the model would end the line, or it has
MAX_WORDS_BEFORE_RHYME words), and never right after punctuation, where it would read tacked on
("never heard. high"): the line writes on to a word first. There a group's
first line is the model's own: its last word sets the target, so it may not end on a word with
fewer than MIN_RHYMES rhyming line ends ("window", "fury", "journey" left their partners nothing);
it writes on instead, and takes such a word by force only at MAX_WORDS_BEFORE_RHYME words. Once
its rhyme word is whole, such a line closes: one punctuation token at most, then a line or stanza
break. A preference: relaxed, it yields, and the line misses its rhyme. No rhyme comes inside a
word: not after letters that are no word yet, nor after a word the model's likeliest token goes on
spelling ("consol" + "ation" would have read "a consol heard").

In a metered line (a sonnet's iambs) the forced rhyme word also keeps the beat where it starts
("another" cannot end an iambic ten-syllable line; "delight" can), unless no rhyme would.

A target with no perfect rhyme among the line ends (a typed first line ending "window") takes a
slant rhyme (phonetics.slant_rhymes: "window / widow") rather than none; no rhyme is the same
sound again ("night / knight"), and no line ends, rhymed by the model or forced, on a function
word or one that leaves its phrase open ("the", "they", "upon").

Where the rhyme may come from: only words that English verse really ends its lines on
(trainer/common/lineends.py: dictionary words ending at least 50 lines of the training corpus),
so that no forced rhyme reaches for "macaroon" or a dictionary fragment ("inter"), and none
spelled from a word of its own (" is" + "abel"). Among them the
model chooses, with a prior for the common ones: each offered token gets PRIOR_WEIGHT times the log
of its commonest word's share of line ends, so that "night" beats "kite" when the model is unsure,
and a forced choice is sharpened (RHYME_SHARPEN) towards the model's favourite.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from studio.core.formtokens import (
    DANGLING,
    FormPosition,
    Kind,
    RhymeTrie,
    form_position,
    line_state,
    meter_positions,
    vocabulary_words,
)
from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.use_word import (
    break_flags,
    goes_on_spelling,
    rank_of_best,
)
from studio.core.generation.vocabulary import (
    count_tensor,
    encoder,
    ids_mask,
    kinds_mask,
    mask_tensor,
    token_table,
)
from trainer.common import phonetics
from trainer.common.form import METERS, Form
from trainer.common.lineends import line_ends

if TYPE_CHECKING:
    import torch

    from studio.core.formtokens import TokenTable
    from studio.core.generation.plan import PoemPlan
    from studio.core.generation.state import PoemState

MAX_RHYME_SYLLABLES = 3
# A line without a syllable count is offered rhymes once it has this many words...
MIN_WORDS_BEFORE_RHYME = 4
# ...with this added to the scores of their first tokens (chosen by reading poems: 2 to 4 tried),
RHYME_BONUS = 3.0
# and takes one by force once it has this many, or would end unrhymed.
MAX_WORDS_BEFORE_RHYME = 10
# Before that, a rhyme comes at the first word start where one ranks among the model's FIT_RANK
# likeliest tokens, a bound FIT_GROWTH times wider for each word past MIN_WORDS_BEFORE_RHYME, so
# that it stands where it fits rather than where the line would have ended.
FIT_RANK = 25
FIT_GROWTH = 2.0
# Marks that close a sentence or break it off: none before the rhyme word, which would read
# tacked on after them ("never heard. high").
STOPS = (".", "!", "?", ";", ":", "--", "\u2014", "\u2013")
# A group's first line ends on a word that shares its rhyming part with at least this many line
# ends, itself included (93% of the corpus's line ends; 2 let "roofs / hoofs" and "fury / jury").
MIN_RHYMES = 3
# Rhymes come from the words verse ends its lines on, spelled in at most this many tokens.
MAX_RHYME_TOKENS = 3
# The prior for common rhymes, in nats per nat of log frequency (0.5: a word ending 100 times
# more lines gains 2.3 nats; chosen by reading poems, 0.3 to 1 tried).
PRIOR_WEIGHT = 0.5
# A forced rhyme takes the model's favourite more often: its scores are multiplied by this (the
# same as dividing the temperature), since the rare rhymes in a flat tail are the forced ones.
RHYME_SHARPEN = 2.0
# Short words a line may end on; other one- and two-letter "words" in the dictionary are mostly
# fragments and abbreviations ("re", "ag"). Function words make weak rhymes that end nothing.
_SHORT_ENDINGS = frozenset({"me", "be", "he", "we", "go", "so", "no", "do", "my", "by", "lo", "oh"})
_NO_ENDINGS = frozenset(
    {"the", "and", "for", "but", "nor", "its", "his", "her", "our", "than"}
    | {"they", "has", "was", "is", "are", "who", "whom", "which", "that"}  # "because they"
)


class RhymeTarget(Processor):
    """Steers each rhymed line's last word onto a rhyme."""

    def __init__(self, form: Form, table: TokenTable, encode: Any) -> None:
        self.form = form
        self.cycle = METERS[form.meter] if form.meter is not None else None
        self.table = table
        self.encode = encode
        self.spelling: list[int] | None = None  # the rhyme word's tokens so far
        self.trie: RhymeTrie | None = None
        self.offered: frozenset[int] = frozenset()  # the tokens this step allowed
        self.could_end = False  # the rhyme word offered this step was already whole
        self.closed_at: int | None = None  # the line (its newlines before it) whose rhyme is whole
        self.used: frozenset[str] = frozenset()  # the last words of the poem's finished lines

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
    def _top(self) -> float:
        return math.log(max(line_ends().values()))

    def _weight(self, word: str) -> float:
        """The prior of `word`: PRIOR_WEIGHT times its log share of the commonest's line ends."""
        return PRIOR_WEIGHT * (math.log(line_ends().get(word, 1)) - self._top)

    def _with_prior(self, prefix: list[int], scores: torch.Tensor) -> torch.Tensor:
        """`scores` with each token the trie allows after `prefix` raised by its words' prior."""
        assert self.trie is not None
        best = self.trie.best_below(prefix, self._weight)
        if not best:
            return scores
        import torch

        ids = torch.tensor(list(best), device=scores.device)
        prior = torch.tensor(list(best.values()), dtype=scores.dtype, device=scores.device)
        return scores.index_add(0, ids, prior)

    @functools.cached_property
    def endings(self) -> list[str]:
        """The words a line may end on: real words, not function words, that have a rhyme."""
        usable = [word for word in self.words if _real_ending(word)]
        sounds: dict[str, set[str]] = {}
        for word in usable:
            for part in phonetics.rhyme_parts(word):
                sounds.setdefault(part, set()).add(word)
        shared = {part for part, words in sounds.items() if len(words) > 1}
        return [word for word in usable if phonetics.rhyme_parts(word) & shared]

    @functools.cached_property
    def openers(self) -> frozenset[str]:
        """The words a group's first line may end on: endings with at least MIN_RHYMES words
        (themselves included) sharing a rhyming part, so that the group's later lines have a
        choice."""
        sounds: dict[str, int] = {}
        for word in self.endings:
            for part in phonetics.rhyme_parts(word):
                sounds[part] = sounds.get(part, 0) + 1
        return frozenset(
            word
            for word in self.endings
            if any(sounds[part] >= MIN_RHYMES for part in phonetics.rhyme_parts(word))
        )

    def _ends_well(self, line: str, target: str | None) -> bool:
        """Whether `line` may end where it stands: its last word answers `target` (`_answers`),
        or, for a group's first line, is an opener; never a function word or a word that leaves
        its phrase open ("the", "upon")."""
        words = phonetics.words_of(line)
        if not words:
            return False
        if target is None:
            return words[-1] in self.openers
        return _real_ending(words[-1]) and self._answers(words[-1], target)

    def _rhymes(self, word: str, target: str) -> bool:
        """Whether `word` rhymes perfectly with `target`."""
        return phonetics.rhymes(word, target)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one processor per poem, a few targets each
    def _slant(self, target: str) -> bool:
        """Whether `target` takes slant rhymes: no line end rhymes with it perfectly, but for
        echoes ("bridge" has only "ridge")."""
        return not any(
            self._rhymes(word, target) and not phonetics.echoes(word, target)
            for word in self.endings
        )

    def _answers(self, word: str, target: str) -> bool:
        """Whether `word` rhymes with `target` (slant where it has no perfect rhyme), and is not
        the same sound again ("night / knight")."""
        if phonetics.echoes(word, target):
            return False
        if self._rhymes(word, target):
            return True
        return self._slant(target) and phonetics.slant_rhymes(word, target)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one processor per poem, a few targets each
    def _trie(
        self,
        target: str | None,
        low: int,
        high: int,
        used: frozenset[str] = frozenset(),
        beats: frozenset[int] = frozenset(),
    ) -> RhymeTrie:
        """The words that may end the line (`_candidates`); with `beats` (where the meter lets
        the word start), only those that keep the meter, if any do."""
        words = self._candidates(target, low, high, used)
        if beats and self.cycle is not None:
            cycle = self.cycle
            metered = [w for w in words if any(phonetics.fits_at(w, b, cycle) for b in beats)]
            words = tuple(metered) or words
        return RhymeTrie(words, self.encode)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one processor per poem, a few targets each
    def _candidates(
        self, target: str | None, low: int, high: int, used: frozenset[str]
    ) -> tuple[str, ...]:
        """The words that may end the line: rhyming with `target` (any that can be rhymed with,
        for a group's first line), with `low` to `high` syllables, and not among `used` (the
        poem's line ends so far: "satisfied" twice is no rhyme). A group's first line also
        leaves the sounds of `used` alone, so that a new group brings a new sound."""
        sounds = frozenset().union(*(phonetics.rhyme_parts(word) for word in used))
        sized = [
            word
            for word in self.endings
            if word not in used
            and any(low <= count <= high for count in phonetics.syllable_counts(word))
        ]
        if target is None:
            fits = [w for w in sized if w in self.openers and not phonetics.rhyme_parts(w) & sounds]
        else:
            fits = [w for w in sized if self._answers(w, target)]
        return tuple(fits)

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        self.offered = frozenset()
        self.could_end = False
        if relaxed:
            return scores
        position = form_position(state.text, self.form)
        self.used = _line_ends(state.text)
        if position.finished or position.line.rhyme is None:
            self.spelling = None
            return scores
        free = position.line.syllables is None
        if free and self.closed_at == state.text.count("\n"):
            return self._close(position, scores)
        self.closed_at = None
        if self.spelling is None:
            span = self._due(position, scores)
            if span is None:
                return self._unended(position, self._boost(position, scores)) if free else scores
            if span[0] > span[1]:  # not yet: keep room for the shortest rhyme after this word
                return self._leave_room(position.rhyme_word, span[1], scores)
            beats = meter_positions(position.text, self.cycle) if self.cycle and not free else None
            self.trie = self._trie(position.rhyme_word, *span, self.used, beats or frozenset())
            if not self.trie:
                return scores  # no word fits: the line misses its rhyme
            allowed, can_end = self.trie.step([])
        else:
            assert self.trie is not None
            allowed, can_end = self.trie.step(self.spelling)
            if not allowed:
                if not free:
                    return scores  # the word is whole: the syllable count decides what follows
                self.spelling = None
                self.closed_at = state.text.count("\n")
                return self._close(position, scores)
        self.offered = frozenset(allowed)
        self.could_end = can_end
        scores = self._with_prior(self.spelling or [], scores) * RHYME_SHARPEN
        mask = ids_mask(allowed, scores.shape[0], scores.device)
        if can_end:
            ends = kinds_mask(self.table, (Kind.NEWLINE, Kind.STANZA), scores.device)
            mask = mask | ends | mask_tensor(self.table.closers, scores.device)
        return scores.masked_fill(~mask, float("-inf"))

    def _due(self, position: FormPosition, scores: torch.Tensor) -> tuple[int, int] | None:
        """The syllables the last word may have when it is due now, else None."""
        state = line_state(position.text)
        if not position.text.strip() or _inside_word(self.table, state.partial, scores):
            return None  # nothing written on the line yet, or mid-word
        target = position.line.syllables
        if target is not None:
            totals = state.done
            if state.partial:  # a whole word so far: the next word starts after it
                counts = phonetics.syllable_counts(state.partial)
                totals = frozenset(t + c for t in totals for c in counts) or totals
            done = min(totals, default=0)
            low, high = max(target[0] - done, 1), target[1] - done
            if high < 1:
                return None
            if high > MAX_RHYME_SYLLABLES or not self._trie(
                position.rhyme_word, low, high, self.used
            ):
                return (high + 1, high)  # not due: an empty span carrying the room left
            return low, high
        words = phonetics.words_of(position.text)
        if self._ends_well(position.text, position.rhyme_word):
            return None  # the model found a rhyme (or, opening a group, a rhymable word) itself
        if not state.partial:
            return None  # right after punctuation a rhyme reads tacked on ("heard. high")
        if len(words) >= MAX_WORDS_BEFORE_RHYME:
            return 1, MAX_RHYME_SYLLABLES
        if position.rhyme_word is None or len(words) < MIN_WORDS_BEFORE_RHYME:
            return None  # a group's first line writes on to a rhymable word of its own
        ends = kinds_mask(self.table, (Kind.NEWLINE, Kind.STANZA, Kind.SPECIAL), scores.device)
        if bool(ends[int(scores.argmax())]):  # a break, or the end of the poem
            return 1, MAX_RHYME_SYLLABLES
        starts, _ = self._trie(position.rhyme_word, 1, MAX_RHYME_SYLLABLES, self.used).step([])
        if starts:
            fit = FIT_RANK * FIT_GROWTH ** (len(words) - MIN_WORDS_BEFORE_RHYME)
            if rank_of_best(scores, ids_mask(starts, scores.shape[0], scores.device)) < fit:
                return 1, MAX_RHYME_SYLLABLES  # a rhyme the model likes: it comes where it fits
        return None

    def _unended(self, position: FormPosition, scores: torch.Tensor) -> torch.Tensor:
        """A rhymed line without a syllable count may not end (a break, or the poem's end) until
        it rhymes, or, opening its group, ends on an opener: where a rhyming line would end, its
        rhyme is forced (`_due`), and a line of fewer words writes on rather than slip out
        unrhymed."""
        words = phonetics.words_of(position.text)
        if self._ends_well(position.text, position.rhyme_word):
            return scores
        ends = mask_tensor(break_flags(self.table), scores.device)  # any token holding a break
        target = position.rhyme_word
        if target is not None and self._trie(target, 1, MAX_RHYME_SYLLABLES, self.used):
            ends = ends | mask_tensor(self._stops, scores.device)
        if len(words) >= MIN_WORDS_BEFORE_RHYME and not line_state(position.text).partial:
            # After punctuation a word comes before the rhyme, never a run of marks (" - - -");
            # letters straight after a hyphen or apostrophe go on a word ("mountain-peak"), but
            # not after other marks ("woe.delivery").
            joined = position.text[-2:-1].isalpha() and position.text[-1:] in "-'\u2019"
            kinds = (Kind.WORD, Kind.PIECE) if joined else (Kind.WORD,)
            ends = ends | ~kinds_mask(self.table, kinds, scores.device)
        return scores.masked_fill(ends, float("-inf"))

    @functools.cached_property
    def _stops(self) -> tuple[bool, ...]:
        """Per token: whether it closes a sentence or breaks it off (". ; : ! ?" and dashes)."""
        return tuple(any(mark in text for mark in STOPS) for text in self.table.texts)

    def _boost(self, position: FormPosition, scores: torch.Tensor) -> torch.Tensor:
        """Add RHYME_BONUS to the first tokens of rhyming words after a whole word, from
        MIN_WORDS_BEFORE_RHYME words on; a token so chosen starts the rhyme word (`observe`)."""
        state = line_state(position.text)
        # Only right after a whole word: after punctuation a rhyme reads tacked on ("heard. high").
        after_word = bool(state.partial) and not _inside_word(self.table, state.partial, scores)
        if not after_word or len(phonetics.words_of(position.text)) < MIN_WORDS_BEFORE_RHYME:
            return scores
        if position.rhyme_word is None:
            return scores  # a group's first line: any opener may end it, none is pushed
        self.trie = self._trie(position.rhyme_word, 1, MAX_RHYME_SYLLABLES, self.used)
        starts, _ = self.trie.step([])
        if not starts:
            return scores
        self.offered = frozenset(starts)
        bonus = ids_mask(starts, scores.shape[0], scores.device)
        return self._with_prior([], scores + bonus.to(scores.dtype) * RHYME_BONUS)

    def _close(self, position: FormPosition, scores: torch.Tensor) -> torch.Tensor:
        """The line's rhyme word is whole: one punctuation token may follow, then a break."""
        ends = kinds_mask(self.table, (Kind.NEWLINE, Kind.STANZA), scores.device)
        if not line_state(position.text).ends_with_punct:
            ends = ends | mask_tensor(self.table.closers, scores.device)
        return scores.masked_fill(~ends, float("-inf"))

    def _leave_room(self, target: str | None, room: int, scores: torch.Tensor) -> torch.Tensor:
        """Mask words so long that no rhyme would fit after them in the `room` syllables left."""
        shortest = min(
            (n for n in range(1, MAX_RHYME_SYLLABLES + 1) if self._trie(target, n, n, self.used)),
            default=None,
        )
        if shortest is None:
            return scores
        syllables = count_tensor(self.table.syllables, scores.device)
        too_long = kinds_mask(self.table, (Kind.WORD,), scores.device) & (
            syllables > room - shortest
        )
        return scores.masked_fill(too_long, float("-inf")) if bool(too_long.any()) else scores

    def observe(self, state: PoemState, token: int) -> None:
        if token in self.offered:
            self.spelling = [*(self.spelling or []), token]
            return
        if self.spelling is not None and self.could_end and self.table.kinds[token] is Kind.PUNCT:
            self.closed_at = state.text.count("\n")  # the model ended the whole rhyme word
        self.spelling = None


def _real_ending(word: str) -> bool:
    """Whether a line may end on `word`: not a fragment or abbreviation ("re", "ag"), not a
    function word, not a word that leaves its phrase open ("with", "upon")."""
    return (
        (len(word) > 2 or word in _SHORT_ENDINGS)
        and word not in _NO_ENDINGS
        and word not in DANGLING
    )


def _inside_word(table: TokenTable, partial: str, scores: torch.Tensor) -> bool:
    """Whether the line ends inside a word (`partial`, its last letters, goes on: no rhyme may
    come in the middle of it)."""
    return bool(partial) and goes_on_spelling(table, partial, scores)


def _line_ends(text: str) -> frozenset[str]:
    """The last words of the finished lines of `text`."""
    ends = (phonetics.words_of(line) for line in text.split("\n")[:-1])
    return frozenset(words[-1] for words in ends if words)


def build(plan: PoemPlan, state: PoemState) -> Processor | None:
    """Rhyme targets for a form with a rhyme scheme; None otherwise."""
    form = plan.form
    if form is None or not any(label for stanza in form.stanzas for label in stanza):
        return None
    return RhymeTarget(form, token_table(plan.model), encoder(plan.model))
