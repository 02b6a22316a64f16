"""The rhyme target: a line that must rhyme ends on a word that rhymes with its group's first line,
and a group's first line ends on a word that has rhymes (not "the", not a word left alone).

When the line's last word is due, only the tokens that spell a rhyming word may come, along the
tokenizer's own spelling of it (studio/core/formtokens.py's `RhymeTrie`), until the word is whole.
The last word is due when the syllables left fit one word of at most MAX_RHYME_SYLLABLES (a line
with a syllable count); even then a shorter word may come first where a shorter rhyme fits after it,
and a word being spelled may go on, so that the rhyme comes where the model puts it, mostly on one
syllable ("night", not a forced "liberty"). A line without one is steered softly: from
MIN_WORDS_BEFORE_RHYME words on, the first tokens of rhyming words get RHYME_BONUS at each word
start, so the model may take a rhyme where it fits; it comes for certain at the first word start
where the model ranks one among its FIT_RANK likeliest tokens (a bound that widens with each word),
so that it stands where it fits; such a line may not end unrhymed, nor close a sentence before its
rhyme (". ; : ! ?" and dashes), and the rhyme is forced only as a last resort (the model would end
the line, or it has MAX_WORDS_BEFORE_RHYME words), and never right after punctuation, where it would
read tacked on ("never heard. high"): the line writes on to a word first. There a group's first line
is the model's own: its last word sets the target, so it may not end on a word with fewer than
MIN_RHYMES rhyming line ends ("window", "fury", "journey" left their partners nothing); it writes on
instead, and takes such a word by force only at MAX_WORDS_BEFORE_RHYME words. Once its rhyme word is
whole, such a line closes: one punctuation token at most, then a line or stanza break. A preference:
relaxed, it yields, and the line misses its rhyme. No rhyme comes inside a word: not after letters
that are no word yet, nor after a word the model's likeliest token goes on spelling ("consol" +
"ation" would have read "a consol heard").

In a metered line (a sonnet's iambs) the forced rhyme word also keeps the beat where it starts
("another" cannot end an iambic ten-syllable line; "delight" can), unless no rhyme would.

A target with fewer than SLANT_BELOW perfect rhymes among the line ends (a typed first line
ending "window" or "bridge") takes slant rhymes too (phonetics.slant_rhymes: "window / snow",
"bridge / edge") rather than none or one forced everywhere; no rhyme is the same sound again
("night / knight"), and no line ends, rhymed by the model or forced, on a function word or one
that leaves its phrase open ("the", "they", "upon").

Where the rhyme may come from, and which words a line may end on, is
studio/core/generation/rhyme_words.py (built once per tokenizer). Among them the model chooses,
with a prior for the common ones, and a forced choice is sharpened (RHYME_SHARPEN) towards the
model's favourite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from studio.core.formtokens import (
    FormPosition,
    Kind,
    RhymeTrie,
    form_position,
    line_state,
    meter_positions,
)
from studio.core.generation.processors.base import Processor
from studio.core.generation.processors.use_word import (
    break_flags,
    goes_on_spelling,
    rank_of_best,
)
from studio.core.generation.rhyme_words import Rule, real_ending, rhyme_words
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
# A target with fewer perfect rhymes than this among the line ends takes slant rhymes too: with
# "ridge" its only one, 40 of 40 quatrains on "Under the old bridge" (eval, N=50) forced it ("with
# a loud ridge", "and ridge"), and those on "The train goes north" forced "forth" ("When to him a
# shout forth"); now "a storm of rage", "a shout calls", which CMU counts as misses.
SLANT_BELOW = 2
# A forced rhyme takes the model's favourite more often: its scores are multiplied by this (the
# same as dividing the temperature), since the rare rhymes in a flat tail are the forced ones.
RHYME_SHARPEN = 2.0


class RhymeTarget(Processor):
    """Steers each rhymed line's last word onto a rhyme."""

    def __init__(
        self,
        form: Form,
        table: TokenTable,
        encode: Any,
        rhymes: Rule = phonetics.rhymes,
        slant_below: int = SLANT_BELOW,
    ) -> None:
        """`rhymes` says whether a word rhymes with a target (by CMU sound unless given); a target
        with fewer than `slant_below` perfect rhymes takes slant rhymes too."""
        self.form = form
        self.cycle = METERS[form.meter] if form.meter is not None else None
        self.table = table
        self.book = rhyme_words(table, encode, rhymes, slant_below)
        self.spelling: list[int] | None = None  # the rhyme word's tokens so far
        self.trie: RhymeTrie | None = None
        self.offered: frozenset[int] = frozenset()  # the tokens this step allowed
        self.could_end = False  # the rhyme word offered this step was already whole
        self.closed_at: int | None = None  # the line (its newlines before it) whose rhyme is whole
        self.used: frozenset[str] = frozenset()  # the last words of the poem's finished lines

    def _with_prior(self, prefix: list[int], scores: torch.Tensor) -> torch.Tensor:
        """`scores` with each token the trie allows after `prefix` raised by its words' prior."""
        assert self.trie is not None
        best = self.trie.best_below(prefix, self.book.weight)
        if not best:
            return scores
        import torch

        ids = torch.tensor(list(best), device=scores.device)
        prior = torch.tensor(list(best.values()), dtype=scores.dtype, device=scores.device)
        return scores.index_add(0, ids, prior)

    def _ends_well(self, line: str, target: str | None) -> bool:
        """Whether `line` may end where it stands: its last word answers `target` (`_answers`),
        or, for a group's first line, is an opener; never a function word or a word that leaves
        its phrase open ("the", "upon")."""
        words = phonetics.words_of(line)
        if not words:
            return False
        if target is None:
            return words[-1] in self.book.openers
        return real_ending(words[-1]) and self.book.answers(words[-1], target)

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
            beats_at = beats or frozenset()
            self.trie = self.book.trie(position.rhyme_word, *span, self.used, beats_at, self.cycle)
            if not self.trie:
                return scores  # no word fits: the line misses its rhyme
            allowed, can_end = self.trie.step([])
            waiting = None if free else self._wait(position, span[1], scores)
        else:
            assert self.trie is not None
            allowed, can_end = self.trie.step(self.spelling)
            if not allowed:
                if not free:
                    return scores  # the word is whole: the syllable count decides what follows
                self.spelling = None
                self.closed_at = state.text.count("\n")
                return self._close(position, scores)
            waiting = None
        self.offered = frozenset(allowed)
        self.could_end = can_end
        scores = self._with_prior(self.spelling or [], scores) * RHYME_SHARPEN
        mask = ids_mask(allowed, scores.shape[0], scores.device)
        if can_end:
            ends = kinds_mask(self.table, (Kind.NEWLINE, Kind.STANZA), scores.device)
            mask = mask | ends | mask_tensor(self.table.closers, scores.device)
        if waiting is not None:
            mask = mask | waiting
        return scores.masked_fill(~mask, float("-inf"))

    def missed(self, state: PoemState) -> bool:
        """Whether the line just closed had to rhyme with an earlier line and does not (its rhyme
        yielded to the other rules: "harm / repaid"), or opened a group on a word with too few
        rhymes to answer it (its count ran out first: "tempest", then "last")."""
        position = form_position(state.text.rstrip("\n"), self.form)
        target = position.rhyme_word
        line = position.line
        if line.rhyme is None or not position.text.strip():
            return False
        if target is None and line.rhymes_with is not None:
            return False  # the group's first line has no word to rhyme with
        return not self._ends_well(position.text, target)

    def _wait(self, position: FormPosition, high: int, scores: torch.Tensor) -> torch.Tensor | None:
        """What may come instead of the rhyme in a line with a syllable count, when it is due
        with `high` syllables left, or None: the word being spelled may go on (no rhyme comes
        inside a word), and a word may come first where a shorter rhyme fits after it. Without
        the words, three syllables left meant a rhyme of three ("liberty", "company",
        "satisfied") forced at once; with them, the model may write a short word first and rhyme
        on fewer syllables, where it finds the most rhymes."""
        device = scores.device
        waiting = None
        if _inside_word(self.table, line_state(position.text).partial, scores):
            waiting = kinds_mask(self.table, (Kind.PIECE,), device)
        # Two rhymes of that size at least: the word written first may be one of them ("we the
        # grey" leaves no rhyme of one syllable for "day" when "grey" was the only one).
        shortest = self._shortest_rhyme(position.rhyme_word, high - 1, at_least=2)
        if shortest is not None:
            syllables = count_tensor(self.table.syllables, device)
            fits = (syllables >= 1) & (syllables <= high - shortest)
            words = kinds_mask(self.table, (Kind.WORD,), device) & fits
            waiting = words if waiting is None else waiting | words
        return waiting

    def _due(self, position: FormPosition, scores: torch.Tensor) -> tuple[int, int] | None:
        """The syllables the last word may have when it is due now, else None."""
        state = line_state(position.text)
        if not position.text.strip():
            return None  # nothing written on the line yet
        target = position.line.syllables
        if target is not None:  # mid-word too: the word may go on (`_wait`), or the rhyme come
            totals = state.done
            if state.partial:  # a whole word so far: the next word starts after it
                counts = phonetics.syllable_counts(state.partial)
                totals = frozenset(t + c for t in totals for c in counts) or totals
            done = min(totals, default=0)
            low, high = max(target[0] - done, 1), target[1] - done
            if high < 1:
                return None
            if high > MAX_RHYME_SYLLABLES or not self.book.candidates(
                position.rhyme_word, low, high, self.used
            ):
                return (high + 1, high)  # not due: an empty span carrying the room left
            return low, high
        if _inside_word(self.table, state.partial, scores):
            return None  # mid-word
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
        starts, _ = self.book.trie(position.rhyme_word, 1, MAX_RHYME_SYLLABLES, self.used).step([])
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
        if target is not None and self.book.candidates(target, 1, MAX_RHYME_SYLLABLES, self.used):
            ends = ends | mask_tensor(self.book.stops, scores.device)
        if len(words) >= MIN_WORDS_BEFORE_RHYME and not line_state(position.text).partial:
            # After punctuation a word comes before the rhyme, never a run of marks (" - - -");
            # letters straight after a hyphen or apostrophe go on a word ("mountain-peak"), but
            # not after other marks ("woe.delivery").
            joined = position.text[-2:-1].isalpha() and position.text[-1:] in "-'\u2019"
            kinds = (Kind.WORD, Kind.PIECE) if joined else (Kind.WORD,)
            ends = ends | ~kinds_mask(self.table, kinds, scores.device)
        return scores.masked_fill(ends, float("-inf"))

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
        self.trie = self.book.trie(position.rhyme_word, 1, MAX_RHYME_SYLLABLES, self.used)
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

    def _shortest_rhyme(self, target: str | None, most: int, at_least: int = 1) -> int | None:
        """The fewest syllables, up to `most`, of `at_least` words that may end the line, or
        None."""
        sizes = range(1, most + 1)
        fits = (n for n in sizes if len(self.book.candidates(target, n, n, self.used)) >= at_least)
        return next(fits, None)

    def _leave_room(self, target: str | None, room: int, scores: torch.Tensor) -> torch.Tensor:
        """Mask words so long that no rhyme would fit after them in the `room` syllables left."""
        shortest = self._shortest_rhyme(target, MAX_RHYME_SYLLABLES)
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
