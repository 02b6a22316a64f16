"""English phonetics for form: syllables, stresses and rhymes from the CMU Pronouncing Dictionary.

The dictionary (BSD-2-Clause, notice in `data/CMUDICT-LICENSE`) ships gzip-compressed beside this
module and is read by the small reader below on first use, then kept. Words it lacks get a
syllable estimate from spelling rules (`estimate_syllables`) and borrow a rhyme only from a known
word that ends their spelling ("glimmerlight" rhymes as "light"); otherwise they never rhyme.

A word with several pronunciations (fire, every) meets a count, a stress pattern or a
rhyme if any one of them does: the same rule serves decoding and evaluation.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Iterable, Sequence
from importlib import resources

from trainer.common.errors import PoetstudioError

Phones = tuple[str, ...]

DATA_PACKAGE = "trainer.common"
DATA_FILE = "data/cmudict.dict.gz"
# A borrowed rhyme comes from a known word of at least this many letters that ends the spelling.
MIN_RHYME_ENDING = 3
# Line syllable totals are sets of sums; a line this long is past any form poetstudio offers.
MAX_LINE_SYLLABLES = 200

_WORD = re.compile(r"'?[a-z]+(?:'[a-z]+)*'?")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_VOWEL_RUN = re.compile(r"[aeiouy]+")
_VOWEL_PHONES = frozenset(
    ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
)


# One dictionary line: the word, an optional "(2)" for a further pronunciation, the phones, and
# an optional "# comment". One regex pass over the whole file is what makes the read fast.
_ENTRY = re.compile(r"^([^ (\n]+)(?:\(\d+\))? ([^#\n]*[^#\n ])", re.MULTILINE)


@functools.cache
def dictionary() -> dict[str, tuple[str, ...]]:
    """Every CMU word (lowercase) -> its pronunciations as space-separated phones, in the
    dictionary's order ("fire" -> ("F AY1 ER0", "F AY1 R")); read once."""
    try:
        raw = resources.files(DATA_PACKAGE).joinpath(DATA_FILE).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise PoetstudioError(
            f"the pronouncing dictionary {DATA_FILE} is missing from poetstudio; reinstall it"
        ) from exc
    table: dict[str, tuple[str, ...]] = {}
    for word, phones in _ENTRY.findall(gzip.decompress(raw).decode("utf-8")):
        table[word] = table.get(word, ()) + (phones,)
    return table


def normalize(word: str) -> str:
    """`word` as the dictionary spells it: lowercase, straight apostrophes, no outer punctuation."""
    return word.strip().lower().translate(_APOSTROPHES).strip('.,;:!?"()[]{}-\u2014\u2013')


def words_of(text: str) -> list[str]:
    """The words of a line, normalized, in order; digits and punctuation are not words."""
    return _WORD.findall(text.lower().translate(_APOSTROPHES))


def _lookup(word: str) -> tuple[Phones, ...]:
    key = normalize(word)
    found = _parsed(key)
    if not found and "'" in key:
        # A quotation mark, not an elision: 'like -> like.
        found = _parsed(key.strip("'"))
    if not found and key.endswith("'d"):
        # Older verse marks a silent -ed: dimm'd, belov'd read as dimmed, beloved, unsyllabic.
        spelled = _parsed(key[:-2] + "ed")
        fewest = min((len(stresses(phones)) for phones in spelled), default=0)
        found = tuple(phones for phones in spelled if len(stresses(phones)) == fewest)
    return found


@functools.lru_cache(maxsize=1 << 16)
def _parsed(key: str) -> tuple[Phones, ...]:
    return tuple(tuple(phones.split(" ")) for phones in dictionary().get(key, ()))


def pronunciations(word: str) -> list[Phones]:
    """Every CMU pronunciation of `word` (phones with stress digits); empty when it is unknown."""
    return list(_lookup(word))


def is_known(word: str) -> bool:
    """Whether the dictionary has `word`."""
    return bool(_lookup(word))


def _is_vowel(phone: str) -> bool:
    return phone[-1].isdigit()


def stresses(phones: Phones) -> str:
    """The stress digits of a pronunciation, one per syllable: 1 primary, 2 secondary, 0 none."""
    return "".join(phone[-1] for phone in phones if _is_vowel(phone))


def estimate_syllables(word: str) -> int:
    """A syllable count from spelling alone, for words the dictionary lacks (at least 1).

    Vowel runs are syllables; a silent final e (or -es, -ed after most consonants) and a silent
    e before -ly/-ment/-ful/-ness/-less take one away; vowel pairs that are usually two syllables
    (li-on, du-al, ne-on) add one back, except in -tion, -cious and kin.
    """
    w = re.sub(r"[^a-z]", "", normalize(word))
    if not w:
        return 0
    # A leading y is a consonant (yes, yellow); so is a y between vowels (beyond, lawyer).
    w = ("_" + w[1:]) if w[0] == "y" else w
    w = re.sub(r"(?<=[aeiou])y(?=[aeiou])", "_", w)
    w = w.replace("qu", "q_")  # the u of qu is a consonant (queen, quiet)
    count = len(_VOWEL_RUN.findall(w))
    if count > 1:
        if re.search(r"[^aeiouy]e$", w) and not re.search(r"[^aeiouy]le$", w):
            count -= 1  # cake, stone; but table, gentle
        elif re.search(r"[^aeiouy]es$", w) and not re.search(r"(?:[sxzcg]|ch|sh)es$", w):
            count -= 1  # cakes, stones; but boxes, roses, places, ages
        elif re.search(r"[^aeiouytd]ed$", w) and not re.search(r"[^aeiouy]led$", w):
            count -= 1  # walked, loved; but wanted, faded, battled
        elif re.search(r"[gq]ue$", w):
            count -= 1  # plague, unique
        if re.search(r"[^aeiouy]e(?:ly|ment|ments|ful|ness|less)$", w):
            count -= 1  # lovely, movement, graceful
    hiatus = re.findall(r"(?<![tcsgx])i[aou]|(?<![gc])eo|ua|uo|ii|ie(?=t)|oe(?=t)", w)
    count += len(hiatus)
    if re.search(r"[aeiouy]ing$", w):
        count += 1  # being, crying: the -ing is its own syllable after a vowel
    if re.search(r"[^aeiouy][ia]sm$", w):
        count += 1  # prism, sarcasm
    return max(count, 1)


@functools.lru_cache(maxsize=1 << 16)
def syllable_counts(word: str) -> frozenset[int]:
    """Every syllable count `word` can have: one per CMU pronunciation, or the estimate."""
    prons = _lookup(word)
    if prons:
        return frozenset(len(stresses(phones)) for phones in prons)
    count = estimate_syllables(word)
    return frozenset({count}) if count else frozenset()


def meets_count(word: str, count: int) -> bool:
    """Whether any pronunciation of `word` has `count` syllables."""
    return count in syllable_counts(word)


def line_syllables(words: Iterable[str]) -> frozenset[int]:
    """Every total a line's words can reach, choosing one count per word."""
    totals = frozenset({0})
    for word in words:
        counts = syllable_counts(word)
        if counts:
            totals = frozenset(t + c for t in totals for c in counts if t + c <= MAX_LINE_SYLLABLES)
    return totals


@functools.lru_cache(maxsize=1 << 16)
def stress_patterns(word: str) -> frozenset[str]:
    """The stress digits of each pronunciation; an unknown word gets '?' per estimated syllable."""
    prons = _lookup(word)
    if prons:
        return frozenset(stresses(phones) for phones in prons)
    count = estimate_syllables(word)
    return frozenset({"?" * count}) if count else frozenset()


def _fits(pattern: str, start: int, cycle: str) -> bool:
    if len(pattern) == 1:
        return True  # a monosyllable may fall on a strong or a weak beat
    for offset, stress in enumerate(pattern):
        strong = cycle[(start + offset) % len(cycle)] == "1"
        if (stress == "1" and not strong) or (stress == "0" and strong):
            return False  # secondary stress (2) and unknown words (?) fit either beat
    return True


def _check_cycle(cycle: str) -> None:
    if not cycle or set(cycle) - {"0", "1"}:
        raise ValueError(f"a meter cycle is 0s and 1s, not {cycle!r}")


def meter_positions(words: Sequence[str], cycle: str, start: int = 0) -> frozenset[int]:
    """The beats (positions mod the cycle) where the next word can start once `words` are laid
    on the repeating beat `cycle` from beat `start`, over every choice of pronunciations; empty
    when no choice fits. See `fits_meter` for the rule."""
    _check_cycle(cycle)
    starts = {start % len(cycle)}
    for word in words:
        patterns = stress_patterns(word)
        if not patterns:
            continue
        starts = {
            (position + len(pattern)) % len(cycle)
            for position in starts
            for pattern in patterns
            if _fits(pattern, position, cycle)
        }
        if not starts:
            break
    return frozenset(starts)


def fits_at(word: str, position: int, cycle: str) -> bool:
    """Whether some pronunciation of `word` fits the beat `cycle` starting at `position`."""
    _check_cycle(cycle)
    return any(_fits(pattern, position, cycle) for pattern in stress_patterns(word))


def fits_meter(words: Sequence[str], cycle: str) -> bool:
    """Whether some choice of pronunciations lays the words on the repeating beat `cycle`.

    `cycle` marks weak (0) and strong (1) beats: iambic is "01", trochaic "10". A polysyllable's
    primary stress must fall on a strong beat and its unstressed syllables on weak ones;
    monosyllables fit anywhere and secondary stress counts as either.
    """
    return bool(meter_positions(words, cycle))


def rhyming_part(phones: Phones) -> str:
    """The phones from the last stressed vowel on, stress digits dropped: "L AY1 T" -> "AY T".

    Secondary stress counts (sunlight rhymes with night); a word with no stressed vowel rhymes
    from its last vowel.
    """
    vowels = [i for i, phone in enumerate(phones) if _is_vowel(phone)]
    stressed = [i for i in vowels if phones[i][-1] in "12"]
    start = stressed[-1] if stressed else (vowels[-1] if vowels else 0)
    return " ".join(phone.rstrip("012") for phone in phones[start:])


def _borrowed_from(word: str) -> str | None:
    """The longest known word that ends `word`'s spelling, for an unknown word's rhyme."""
    letters = normalize(word).strip("'")
    for cut in range(1, len(letters) - MIN_RHYME_ENDING + 1):
        ending = letters[cut:]
        if re.search(r"[aeiouy]", ending) and _lookup(ending):
            return ending
    return None


@functools.lru_cache(maxsize=1 << 16)
def rhyme_parts(word: str) -> frozenset[str]:
    """Every rhyming part of `word`; an unknown word borrows a known ending's, or has none."""
    prons = _lookup(word)
    if not prons:
        ending = _borrowed_from(word)
        prons = _lookup(ending) if ending else ()
    return frozenset(rhyming_part(phones) for phones in prons)


def _same_word(a: str, b: str) -> bool:
    return normalize(a).strip("'") == normalize(b).strip("'")


def rhymes(a: str, b: str) -> bool:
    """Whether two different words rhyme: some pronunciations share the rhyming part."""
    if _same_word(a, b):
        return False
    return bool(rhyme_parts(a) & rhyme_parts(b))


# The consonant clusters English lets begin a syllable, beyond a lone consonant: what a stressed
# syllable's onset may hold ("str" in "extreme", but not "kstr").
_GLIDES = frozenset(("L", "R", "W", "Y"))
_ONSET_PAIRS = frozenset(
    [
        (first, glide)
        for first in ("P", "B", "T", "D", "K", "G", "F", "V", "TH", "SH")
        for glide in _GLIDES
    ]
    + [("S", second) for second in ("P", "T", "K", "M", "N", "L", "W", "F")]
)


def _is_onset(cluster: Phones) -> bool:
    if len(cluster) <= 1:
        return cluster != ("NG",)
    if len(cluster) == 2:
        return (cluster[0], cluster[1]) in _ONSET_PAIRS
    return (
        len(cluster) == 3
        and cluster[0] == "S"
        and cluster[1] in ("P", "T", "K")
        and cluster[2] in _GLIDES
    )


def _rhyme_with_onset(phones: Phones) -> str:
    """The rhyming part with the onset of its stressed syllable: the consonants before it that
    may begin a syllable ("N AY T" for night and knight, "B R IH JH" for bridge, "R IH JH" for
    ridge)."""
    vowels = [i for i, phone in enumerate(phones) if _is_vowel(phone)]
    stressed = [i for i in vowels if phones[i][-1] in "12"]
    start = stressed[-1] if stressed else (vowels[-1] if vowels else 0)
    before = max((i + 1 for i in vowels if i < start), default=0)
    onset = start
    while onset > before and _is_onset(tuple(phones[onset - 1 : start])):
        onset -= 1
    return " ".join(phone.rstrip("012") for phone in phones[onset:])


def echoes(a: str, b: str) -> bool:
    """Whether two words rhyme only by repeating the same sound, onset and all ("place /
    replace", "night / knight", "part / depart"): an identical rhyme, which reads as the word
    again. A different onset is a true rhyme ("bridge / ridge")."""
    if _same_word(a, b):
        return True
    return bool(_onset_rhymes(a) & _onset_rhymes(b))


@functools.lru_cache(maxsize=1 << 16)
def _onset_rhymes(word: str) -> frozenset[str]:
    """Each pronunciation's rhyming part with its onset (`_rhyme_with_onset`)."""
    return frozenset(_rhyme_with_onset(phones) for phones in _lookup(word))


def _final_consonants(part: str) -> str:
    phones = part.split(" ")
    tail: list[str] = []
    for phone in reversed(phones[1:]):
        if phone in _VOWEL_PHONES:
            break
        tail.append(phone)
    return " ".join(reversed(tail))


# Consonants by manner: a slant rhyme may trade a final consonant for one of its kind (time / line).
_MANNERS = (
    frozenset(("P", "B", "T", "D", "K", "G")),
    frozenset(("CH", "JH")),
    frozenset(("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH")),
    frozenset(("M", "N", "NG")),
    frozenset(("L", "R")),
)


def _manner(phone: str) -> int:
    return next((i for i, kind in enumerate(_MANNERS) if phone in kind), -1)


def _vowels_of(part: str) -> list[str]:
    return [phone for phone in part.split(" ") if phone in _VOWEL_PHONES]


def _near(pa: str, pb: str) -> bool:
    """Whether two rhyming parts rhyme loosely: the same final consonants after any vowel (love /
    move); the same vowels (window / pillow), and for a one-vowel part also final consonants of
    the same kind (time / line), where the vowel alone ("bridge / kiss") would not be heard; or
    one part is the other's unstressed last syllable (window / snow)."""
    tail_a, tail_b = _final_consonants(pa), _final_consonants(pb)
    if tail_a and tail_a == tail_b:
        return True
    vowels_a, vowels_b = _vowels_of(pa), _vowels_of(pb)
    if len(vowels_a) != len(vowels_b):
        short, long = (pa, pb) if len(vowels_a) < len(vowels_b) else (pb, pa)
        return len(_vowels_of(short)) == 1 and _last_syllable(long) == short
    if vowels_a != vowels_b:
        return False
    if len(vowels_a) > 1:
        return True
    kinds_a = [_manner(phone) for phone in tail_a.split()]
    kinds_b = [_manner(phone) for phone in tail_b.split()]
    return kinds_a == kinds_b


def _last_syllable(part: str) -> str:
    """A rhyming part from its last vowel on ("IH N D OW" -> "OW")."""
    phones = part.split(" ")
    last = max(i for i, phone in enumerate(phones) if phone in _VOWEL_PHONES)
    return " ".join(phones[last:])


_INFLECTIONS = ("s", "es", "'s", "d", "ed")


def _inflected(a: str, b: str) -> bool:
    """Whether one word is the other with an ending ("window / windows")."""
    short, long = sorted((normalize(a), normalize(b)), key=len)
    return long.startswith(short) and long[len(short) :] in _INFLECTIONS


def slant_rhymes(a: str, b: str) -> bool:
    """Perfect rhyme, or a looser one (`_near`: love / move, window / pillow, time / line,
    window / snow);
    identical words, or the same word inflected ("window / windows"), never rhyme."""
    if _same_word(a, b) or _inflected(a, b):
        return False
    parts_a, parts_b = rhyme_parts(a), rhyme_parts(b)
    if parts_a & parts_b:
        return True
    return any(_near(pa, pb) for pa in parts_a for pb in parts_b)


def is_oov_pair(a: str, b: str) -> bool:
    """Whether either word is missing from the dictionary (its rhyme can only be borrowed)."""
    return not (is_known(a) and is_known(b))


class RhymeIndex:
    """A fixed vocabulary of words grouped by rhyming part, to find a line's rhyme targets fast."""

    def __init__(self, words: Iterable[str]) -> None:
        self._by_part: dict[str, list[str]] = {}
        self._order: dict[str, int] = {}
        for raw in words:
            word = normalize(raw)
            if not word or word in self._order:
                continue
            self._order[word] = len(self._order)
            for part in rhyme_parts(word):
                self._by_part.setdefault(part, []).append(word)

    def rhymes_for(
        self, target: str, syllables: Iterable[int] | None = None, slant: bool = False
    ) -> list[str]:
        """The indexed words that rhyme with `target` (slant rhymes too when asked), limited to
        those with an allowed syllable count when `syllables` is given; in vocabulary order."""
        allowed = None if syllables is None else frozenset(syllables)
        found: dict[str, None] = {}
        for part in rhyme_parts(target):
            for other, pool in self._by_part.items():
                if other == part or (slant and _near(part, other)):
                    found.update(dict.fromkeys(pool))
        kept = [
            word
            for word in found
            if not _same_word(word, target) and (allowed is None or syllable_counts(word) & allowed)
        ]
        return sorted(kept, key=self._order.__getitem__)
