"""Form at decode time on a model whose vocabulary the test controls: every poem meets its form."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from studio.core.formtokens import Kind, TokenTable
from studio.core.generation.decode import PoemDecode
from studio.core.generation.line_tries import LineTries
from studio.core.generation.poet import Poet
from studio.core.generation.processors import rhyme as rhyme_module
from studio.core.generation.processors.rhyme import (
    MAX_WORDS_BEFORE_RHYME,
    MIN_WORDS_BEFORE_RHYME,
    RHYME_BONUS,
    RHYME_SHARPEN,
    RhymeTarget,
)
from studio.core.generation.processors.syllables import SyllableBudget
from studio.core.generation.rhyme_words import PRIOR_WEIGHT, rhyme_words
from studio.core.generation.settings import SamplingParams
from studio.core.generation.vocabulary import token_table
from tests.helpers.models import build_guided_adapters
from trainer.common import phonetics
from trainer.common.form import parse_form
from trainer.common.home import DataHome
from trainer.common.lineends import line_ends
from trainer.common.textformat import PoemTokens

# Word tokens (each after a space), every line-ending word with rhymes beside it.
WORDS = [
    "the",
    "cold",
    "sea",
    "walk",
    "under",
    "stars",
    "and",
    "sing",
    "free",
    "we",
    "night",
    "light",
    "bright",
    "day",
    "away",
    "grey",
    "gold",
    "old",
    "talk",
    "bars",
    "ring",
    "thunder",
    "pillow",
    "billow",
]
TOKENS = ["<s>", "</s>", "\n", "\n\n", ",", "the"] + [" " + word for word in WORDS]
TOKENS += ["-"]  # a dash, which never closes a rhymed line
# The model's taste, the same at every step: it would never rhyme or count on its own.
TASTE = {" walk": 5.0, " the": 4.5, " cold": 4.2, " under": 3.8, " stars": 3.5, "\n": 3.0}


class WordTokenizer:
    """One token per entry of TOKENS; text is split greedily into the longest tokens."""

    all_special_ids = [0, 1]

    def __len__(self) -> int:
        return len(TOKENS)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids, rest = [], text
        while rest:
            found = [i for i, token in enumerate(TOKENS) if i > 1 and rest.startswith(token)]
            if not found:  # a character no token spells is dropped
                rest = rest[1:]
                continue
            best = max(found, key=lambda i: len(TOKENS[i]))
            ids.append(best)
            rest = rest[len(TOKENS[best]) :]
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True, **_: Any) -> str:
        return "".join(TOKENS[i] for i in ids if not (skip_special_tokens and i < 2))

    def batch_decode(self, batch: list[list[int]], **kwargs: Any) -> list[str]:
        return [self.decode(ids, skip_special_tokens=False) for ids in batch]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [TOKENS[i] for i in ids]

    def get_vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(TOKENS)}


class TasteModel:
    def __init__(self, info: Any, tokenizer: WordTokenizer) -> None:
        self.info = info
        self.tokenizer = tokenizer
        self.context = 512
        self.exempt = torch.tensor([not any(ch.isalpha() for ch in t) for t in TOKENS])
        self.tokens = PoemTokens(0, 1)
        self.scores = torch.tensor([TASTE.get(token, 1.0) for token in TOKENS])


class TasteRows:
    def __init__(self, models: list[TasteModel]) -> None:
        self.models = models
        self.length = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.length += ids.shape[1]
        return torch.stack([model.scores for model in self.models])

    def keep(self, indices: list[int]) -> None:
        self.models = [self.models[i] for i in indices]

    def fork(self, row: int, copies: int) -> None:
        self.keep([*range(row), *[row] * copies, *range(row + 1, len(self.models))])

    def truncate(self, length: int) -> None:
        self.length = min(self.length, length)


class TasteBackend:
    name = "taste"
    per_row_adapters = True
    device = "cpu"

    def __init__(self) -> None:
        self.tokenizer = WordTokenizer()

    def load(self, info: Any, on_progress: Any = None) -> TasteModel:
        return TasteModel(info, self.tokenizer)

    def rows(self, models: list[Any]) -> TasteRows:
        return TasteRows(models)

    def batch_key(self, models: list[Any]) -> Any:
        return "taste"

    def dtype(self, model: Any) -> str:
        return "fp32"

    def decoding(self, threads: int | None) -> Any:
        return contextlib.nullcontext()


@pytest.fixture
def poet(home: DataHome, tiny_base: Path, tmp_path: Path) -> Poet:
    build_guided_adapters(tiny_base, home.models)  # folders for the registry; never loaded
    return Poet(home, bundled_dir=tmp_path / "no-bundled", backend=TasteBackend())


def last_word(line: str) -> str:
    return phonetics.words_of(line)[-1]


@pytest.mark.parametrize("seed", range(6))
def test_a_quatrain_of_four_syllable_lines_rhymes_abab_every_time(poet: Poet, seed: int) -> None:
    params = SamplingParams(form="quatrain", syllables="4", temperature=1.0, seed=seed)
    text = "".join(poet.stream_poem("joy", "", params))
    lines = [line for line in text.split("\n") if line.strip()]
    assert len(lines) == 4, text
    for line in lines:
        assert 4 in phonetics.line_syllables(phonetics.words_of(line)), (line, text)
    assert phonetics.rhymes(last_word(lines[2]), last_word(lines[0])), text
    assert phonetics.rhymes(last_word(lines[3]), last_word(lines[1])), text


@pytest.mark.parametrize("seed", range(4))
def test_a_haiku_counts_five_seven_five(poet: Poet, seed: int) -> None:
    params = SamplingParams(form="haiku", temperature=1.0, seed=seed)
    text = "".join(poet.stream_poem("joy", "", params))
    lines = [line for line in text.split("\n") if line.strip()]
    counts = [phonetics.line_syllables(phonetics.words_of(line)) for line in lines]
    assert len(lines) == 3 and all(n in c for n, c in zip((5, 7, 5), counts, strict=True)), text


def test_getting_a_sonnet_ready_builds_its_meter_masks_and_changes_no_poem(
    home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    build_guided_adapters(tiny_base, home.models)
    ready, cold = (
        Poet(home, bundled_dir=tmp_path / "no-bundled", backend=TasteBackend()) for _ in range(2)
    )
    params = SamplingParams(form="sonnet", syllables="4", temperature=1.0, seed=3)
    ready.prepare("joy", params)
    table = token_table(ready.backend.load(ready.model_info("joy")))
    # Iambic: a word may start on the weak beat, the strong one or either; at a word's start
    # or inside one.
    assert len(table.meter_cache) == 6
    assert "".join(ready.stream_poem("joy", "", params)) == "".join(
        cold.stream_poem("joy", "", params)
    )
    assert len(table.meter_cache) == 6


def test_stanza_breaks_fall_where_the_scheme_puts_them(poet: Poet) -> None:
    params = SamplingParams(rhyme="AB AB", syllables="3", temperature=1.0, seed=1)
    text = "".join(poet.stream_poem("joy", "", params))
    stanzas = [s for s in text.split("\n\n") if s.strip()]
    assert [len([ln for ln in s.split("\n") if ln.strip()]) for s in stanzas] == [2, 2], text


def test_a_stanzas_blank_line_is_no_part_of_the_line_after_it(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form sets the blank line, so its score must not mark the next line's every try."""
    seen: list[float] = []
    real_see, real_choose = LineTries.see, PoemDecode.choose
    counted: list[tuple[bool, int]] = []  # (a break before any of its line's text, times seen)

    def see(self: LineTries, logprob: float, starts_word: bool) -> None:
        seen.append(logprob)
        real_see(self, logprob, starts_word)

    def choose(self: PoemDecode, logits: torch.Tensor) -> int:
        blank, before = not self.state.open_line, len(seen)
        token = real_choose(self, logits)
        breaks = self.kinds[token] in (Kind.NEWLINE, Kind.STANZA)
        counted.append((blank and breaks, len(seen) - before))
        return token

    monkeypatch.setattr(LineTries, "see", see)
    monkeypatch.setattr(PoemDecode, "choose", choose)
    for seed in range(2):
        params = SamplingParams(
            rhyme="AB AB", syllables="3", temperature=1.0, seed=seed, line_tries=3
        )
        text = "".join(poet.stream_poem("joy", "", params))
        assert "\n\n" in text.strip(), text
    assert sorted(set(counted)) == [(False, 1), (True, 0)]


def test_a_first_line_that_breaks_the_form_is_kept_and_sets_the_rhyme(poet: Poet) -> None:
    params = SamplingParams(form="couplets", syllables="4", temperature=1.0, seed=2)
    text = "".join(poet.stream_poem("joy", "the grey sea", params))
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines[0] == "the grey sea" and len(lines) == 4
    assert phonetics.rhymes(last_word(lines[1]), "sea"), text


def rhyme_target(rhyme: str) -> RhymeTarget:
    """The rhyme processor over the test's vocabulary, for a scheme without syllable counts."""
    tokenizer = WordTokenizer()
    table = TokenTable.from_tokenizer(tokenizer, len(TOKENS))
    return RhymeTarget(parse_form(rhyme=rhyme), table, tokenizer.encode)


def taste() -> torch.Tensor:
    return torch.tensor([TASTE.get(token, 1.0) for token in TOKENS])


def allowed(scores: torch.Tensor) -> set[str]:
    return {TOKENS[i] for i in range(len(TOKENS)) if scores[i] != float("-inf")}


def test_a_line_whose_rhyme_word_is_whole_takes_one_punctuation_then_only_a_break() -> None:
    rhyme = rhyme_target("AA")
    state = SimpleNamespace(text="the grey sea\nwalk the cold under stars")
    for _ in range(MAX_WORDS_BEFORE_RHYME):  # walk on until the rhyme is forced
        offered = allowed(rhyme.rescore(state, taste(), relaxed=False))  # type: ignore[arg-type]
        if " walk" not in offered:
            break
        state.text += " walk"
        rhyme.observe(state, TOKENS.index(" walk"))  # type: ignore[arg-type]
    assert offered == {" free", " we"}
    state.text += " free"
    rhyme.observe(state, TOKENS.index(" free"))  # type: ignore[arg-type]
    assert allowed(rhyme.rescore(state, taste(), relaxed=False)) == {"\n", "\n\n", ","}  # type: ignore[arg-type]
    state.text += ","
    rhyme.observe(state, TOKENS.index(","))  # type: ignore[arg-type]
    assert allowed(rhyme.rescore(state, taste(), relaxed=False)) == {"\n", "\n\n"}  # type: ignore[arg-type]


def test_a_rhyme_groups_first_line_ends_only_on_a_word_its_partners_can_rhyme_with() -> None:
    rhyme = rhyme_target("AA")
    ending = taste()
    ending[TOKENS.index("\n")] = 9.0  # the model would end the line
    ends = {"\n", "\n\n", "</s>"}
    # "cold" has two rhymes beside it (gold, old): the line may end, and nothing is pushed.
    opened = rhyme.rescore(SimpleNamespace(text="walk the cold"), ending, relaxed=False)  # type: ignore[arg-type]
    assert torch.equal(opened, ending)
    # "under" has only "thunder": the line writes on, with no rhyme forced yet.
    lonely = rhyme.rescore(SimpleNamespace(text="walk the cold under"), ending, relaxed=False)  # type: ignore[arg-type]
    assert ends.isdisjoint(allowed(lonely)) and " walk" in allowed(lonely)
    # At the most words, a word with rhymes is forced, never "under", "walk" or "stars".
    long = " walk" * MAX_WORDS_BEFORE_RHYME
    forced = allowed(rhyme.rescore(SimpleNamespace(text=long), ending, relaxed=False))  # type: ignore[arg-type]
    assert " cold" in forced and " night" in forced
    assert forced.isdisjoint({" under", " thunder", " walk", " talk", " stars", " bars"})


def test_a_line_that_closed_off_its_count_is_missed_and_written_again() -> None:
    table = TokenTable.from_tokenizer(WordTokenizer(), len(TOKENS))
    budget = SyllableBudget(parse_form(syllables="4"), table)
    lines = ("we the grey\n", "we the old grey\n")
    assert [budget.missed(SimpleNamespace(text=line)) for line in lines] == [True, False]  # type: ignore[arg-type]
    assert budget.missed(SimpleNamespace(text="we the old grey\nwe the\n\n"))  # type: ignore[arg-type]


def test_a_group_opens_only_on_a_word_with_two_rhymes_that_are_no_echo() -> None:
    texts = [" give", " live", " forgive", " night", " light", " bright", " edge", " ridge"]
    texts += [" bridge", "\n"]

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    book = rhyme_words(TokenTable.from_texts(texts), encode)
    # "forgive" echoes "give" (the same onset): each has one true rhyme left, "live".
    assert book.openers == {"live", "night", "light", "bright"}
    # "bridge / ridge" is no echo (the onsets differ); with one true rhyme only, a form's target
    # takes slant rhymes too, and a word asked for by the writer does not.
    assert book.answers("ridge", "bridge") and not book.answers("edge", "bridge")
    form_book = rhyme_words(TokenTable.from_texts(texts), encode, slant_below=2)
    assert form_book.answers("ridge", "bridge") and form_book.answers("edge", "bridge")
    assert not form_book.answers("edge", "night")


def test_a_typed_line_end_without_a_perfect_rhyme_takes_a_slant_rhyme() -> None:
    rhyme = rhyme_target("AA")
    state = SimpleNamespace(text="she opened the window\nwalk the cold under stars" + " walk" * 6)
    offered = allowed(rhyme.rescore(state, taste(), relaxed=False))  # type: ignore[arg-type]
    # The vowels of "window"; its stressed vowel alone ("sing") would not be heard.
    assert offered == {" pillow", " billow"}
    assert all(phonetics.slant_rhymes(word.strip(), "window") for word in offered)


def test_rhyme_word_starts_get_a_bonus_only_from_the_minimum_words_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rhyme_module, "FIT_RANK", 0)  # in so small a vocabulary every rhyme fits
    rhyme = rhyme_target("AA")
    line = "the grey sea\n" + " walk" * (MIN_WORDS_BEFORE_RHYME - 1)
    early = rhyme.rescore(SimpleNamespace(text=line), taste(), relaxed=False)  # type: ignore[arg-type]
    # No bonus yet, and no way out of the line before it rhymes.
    ends = [TOKENS.index(token) for token in ("<s>", "</s>", "\n", "\n\n")]
    assert all(early[i] == float("-inf") for i in ends)
    kept = [i for i in range(len(TOKENS)) if i not in ends]
    assert torch.equal(early[kept], taste()[kept])
    later = rhyme.rescore(SimpleNamespace(text=line + " walk"), taste(), relaxed=False)  # type: ignore[arg-type]
    gained = {TOKENS[i] for i in kept if later[i] != taste()[i]}
    assert gained == {" free", " we"}
    # The bonus, less the prior's distance from the commonest line end: "free" ends more lines.
    common = line_ends()
    top = max(common.values())
    for word in ("free", "we"):
        prior = PRIOR_WEIGHT * (math.log(common[word]) - math.log(top))
        expected = float(taste()[TOKENS.index(" " + word)]) + RHYME_BONUS + prior
        assert float(later[TOKENS.index(" " + word)]) == pytest.approx(expected, abs=1e-5)
    assert common["free"] > common["we"]
    mid_word = rhyme.rescore(SimpleNamespace(text=line + " walk wxq"), taste(), relaxed=False)  # type: ignore[arg-type]
    assert torch.equal(mid_word[kept], taste()[kept])  # no bonus inside a word


def test_a_last_line_that_would_end_the_poem_unrhymed_takes_its_rhyme() -> None:
    rhyme = rhyme_target("AA")
    ending = taste()
    ending[TOKENS.index("</s>")] = 9.0  # the model would end the poem here
    state = SimpleNamespace(text="the grey sea\nwalk the cold under stars")
    assert allowed(rhyme.rescore(state, ending, relaxed=False)) == {" free", " we"}  # type: ignore[arg-type]


def test_rhymes_come_from_words_verse_ends_lines_on() -> None:
    texts = [" night", " kite", " spoon", " macaroon", " tablespoon", " inter", " ab", " moon"]
    texts += [" is", "abel", " tw", "ilight"]  # " is" + "abel" starts as a word of its own
    spelled = {" isabel": [8, 9], " twilight": [10, 11]}
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return spelled.get(text) or ([texts.index(text)] if text in texts else [])

    rhyme = RhymeTarget(parse_form("quatrain"), table, encode)
    assert set(rhyme.book.words) == {"night", "kite", "spoon", "moon", "twilight", "is"}


def test_a_forced_rhyme_prefers_the_commoner_word_when_the_model_is_unsure() -> None:
    rhyme = rhyme_target("AA")
    flat = torch.zeros(len(TOKENS))
    state = SimpleNamespace(text="the grey sea\nwalk the cold under stars" + " walk" * 6)
    scores = rhyme.rescore(state, flat, relaxed=False)  # type: ignore[arg-type]
    assert allowed(scores) == {" free", " we"}
    assert scores[TOKENS.index(" free")] > scores[TOKENS.index(" we")]
    # The model's own preference is sharpened: twice its gap (with the prior's) between rhymes.
    tasted = taste()
    tasted[TOKENS.index(" we")] += 1.0
    sharp = rhyme.rescore(state, tasted, relaxed=False)  # type: ignore[arg-type]
    gap = sharp[TOKENS.index(" we")] - sharp[TOKENS.index(" free")]
    prior = PRIOR_WEIGHT * (math.log(line_ends()["we"]) - math.log(line_ends()["free"]))
    assert float(gap) == pytest.approx(RHYME_SHARPEN * (1.0 + prior), abs=1e-5)


def test_a_forced_rhyme_never_repeats_a_line_end_of_the_poem() -> None:
    rhyme = rhyme_target("AAA")
    state = SimpleNamespace(
        text="the grey sea\nwalk the cold free\nwalk the cold under" + " walk" * 7
    )
    assert allowed(rhyme.rescore(state, taste(), relaxed=False)) == {" we"}  # type: ignore[arg-type]


def test_a_short_rhymed_line_without_a_count_cannot_end_unrhymed() -> None:
    rhyme = rhyme_target("AA")
    ending = taste()
    ending[TOKENS.index("\n")] = 9.0  # the model would end the line after two words
    scores = rhyme.rescore(SimpleNamespace(text="the grey sea\nwalk under"), ending, relaxed=False)  # type: ignore[arg-type]
    assert {"\n", "\n\n", "</s>"}.isdisjoint(allowed(scores))
    assert " walk" in allowed(scores)
    rhymed = rhyme.rescore(SimpleNamespace(text="the grey sea\nwalk free"), ending, relaxed=False)  # type: ignore[arg-type]
    assert "\n" in allowed(rhymed)


def test_a_forced_rhyme_is_never_the_same_sound_again() -> None:
    texts = [" walk", " night", " knight", " light", " the", "\n"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    rhyme = RhymeTarget(parse_form(rhyme="AA"), table, encode)
    state = SimpleNamespace(text="the night\n" + " walk" * MAX_WORDS_BEFORE_RHYME)
    scores = rhyme.rescore(state, torch.zeros(len(texts)), relaxed=False)  # type: ignore[arg-type]
    assert {texts[i] for i in range(len(texts)) if scores[i] != float("-inf")} == {" light"}


def test_no_rhyme_is_forced_inside_a_word_the_model_goes_on_spelling() -> None:
    texts = [" the", " walk", " night", " light", " bright", " delight", " consol", "ation", "\n"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    def offered(form: str, line: str, likeliest: str) -> set[str]:
        rhyme = RhymeTarget(parse_form(rhyme="AA", syllables=form or None), table, encode)
        scores = torch.zeros(len(texts))
        scores[texts.index(likeliest)] = 5.0
        rescored = rhyme.rescore(SimpleNamespace(text="the night\n" + line), scores, False)  # type: ignore[arg-type]
        return {texts[i] for i in range(len(texts)) if rescored[i] != float("-inf")}

    # "consol" is a dictionary word, but the model is spelling "consolation": no "consol light".
    long = "walk" + " walk" * (MAX_WORDS_BEFORE_RHYME - 2) + " consol"
    assert "ation" in offered("", long, "ation")
    assert offered("", long, "\n") == {" light", " bright", " delight"}  # a whole word: due
    # The same in a counted line: two syllables left after "consol", but the word goes on.
    assert "ation" in offered("6", "the the consol", "ation")
    # A whole word: a two-syllable rhyme, or a one-syllable word before a one-syllable rhyme
    # (of two at least: the word written first may be one of them).
    words = {" the", " walk", " night", " light", " bright"}
    assert offered("6", "the the consol", " the") == {" delight"} | words
    assert offered("6", "the the the consol", " the") == {" light", " bright"}  # only a rhyme


def _punctuated() -> tuple[list[str], RhymeTarget]:
    texts = [" walk", " the", " night", " light", " bright", ",", ".", ";", "--", "-", "peak"]
    texts += ["\n"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    return texts, RhymeTarget(parse_form(rhyme="AA"), table, encode)


def test_a_rhyme_never_comes_right_after_punctuation_nor_after_a_stop() -> None:
    texts, rhyme = _punctuated()

    def offered(line: str, likeliest: str) -> set[str]:
        scores = torch.zeros(len(texts))
        scores[texts.index(likeliest)] = 5.0
        rescored = rhyme.rescore(SimpleNamespace(text="the night\n" + line), scores, False)  # type: ignore[arg-type]
        return {texts[i] for i in range(len(texts)) if rescored[i] != float("-inf")}

    # The model would end the line after a comma: no rhyme tacked on ("heard, high"), it writes on.
    after_comma = offered("walk the walk the walk,", "\n")
    # A word comes next: no sentence closes before the rhyme word, which would read tacked on
    # after it, and no run of marks stands in for the line's end (", - - -").
    assert after_comma == {" walk", " the", " night", " light", " bright"}  # not ",peak"
    assert "peak" in offered("walk the walk the mountain-", "\n")  # a hyphened word goes on
    # At the most words, right after punctuation, a word comes first; after it, the rhyme.
    long = "walk" + " walk" * (MAX_WORDS_BEFORE_RHYME - 1)
    assert offered(long + ",", "\n") == {" walk", " the", " night", " light", " bright"}
    assert offered(long + ", walk", "\n") == {" light", " bright"}


def test_a_rhyme_comes_where_the_model_ranks_it_high(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rhyme_module, "FIT_RANK", 1)
    texts, rhyme = _punctuated()
    line = SimpleNamespace(text="the night\n" + "walk" + " walk" * (MIN_WORDS_BEFORE_RHYME - 1))
    scores = torch.zeros(len(texts))
    scores[texts.index(" bright")] = 2.0  # the model's favourite: the rhyme comes here
    rescored = rhyme.rescore(line, scores, False)  # type: ignore[arg-type]
    assert {texts[i] for i in range(len(texts)) if rescored[i] != float("-inf")} == {
        " light",
        " bright",
    }
    scores[texts.index(" walk")] = 3.0  # a rhyme second best: the line goes on
    rescored = rhyme.rescore(line, scores, False)  # type: ignore[arg-type]
    assert rescored[texts.index(" walk")] != float("-inf")


def test_a_forced_rhyme_in_a_metered_line_keeps_the_beat() -> None:
    texts = [" the", " night", " delight", " moonlight", " sunlight", "\n"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    def offered(meter: str | None) -> set[str]:
        form = parse_form(rhyme="AA", syllables="4", meter=meter)
        rhyme = RhymeTarget(form, table, encode)
        state = SimpleNamespace(text="the night\nthe the")  # two syllables left, on a weak beat
        scores = rhyme.rescore(state, torch.zeros(len(texts)), relaxed=False)  # type: ignore[arg-type]
        return {texts[i] for i in range(len(texts)) if scores[i] != float("-inf")}

    assert offered(None) == {" delight", " moonlight", " sunlight"}
    assert offered("iambic") == {" delight"}  # de-LIGHT, not MOON-light, on "the the"


def test_a_counted_line_neither_stops_on_an_open_phrase_nor_on_a_dash() -> None:
    texts = [" walk", " of", " the", " night", " upon", " sweetly", "-", ",", " '", "\n", "a"]
    table = TokenTable.from_texts(texts)
    budget = SyllableBudget(parse_form(syllables="2"), table)

    def offered(text: str) -> set[str]:
        scores = budget.rescore(SimpleNamespace(text=text), torch.zeros(len(texts)), False)  # type: ignore[arg-type]
        return {texts[i] for i in range(len(texts)) if scores[i] != float("-inf")}

    # One syllable left: "of" and "the" would end the line open; "night" closes it ("a" would
    # go on the word "walk").
    assert offered("walk") == {" walk", " night", "-", ",", " '", "a"}
    # After a mark a piece starts a word: "walk,--a" would end open too.
    assert "a" not in offered("walk,--") and " night" in offered("walk,--")
    # Two left: a two-syllable "upon" would fill the line, "sweetly" may.
    assert " upon" not in offered("") and " sweetly" in offered("")
    # The line is full: a closing mark or the break, no dash, no opening quote.
    assert offered("walk night") == {",", "\n"}


def test_no_line_ends_on_a_word_that_leaves_its_phrase_open() -> None:
    texts = [" with", " smith", " upon", " anon", " gone"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    rhyme = RhymeTarget(parse_form("quatrain"), table, encode)
    assert set(rhyme.book.endings) == {"anon", "gone"}  # no "with" / "smith", no "upon"


def test_poems_on_one_tokenizer_share_its_rhyme_words_per_rule() -> None:
    texts = [" anon", " gone", " upon"]
    table = TokenTable.from_texts(texts)

    def encode(text: str) -> list[int]:
        return [texts.index(text)] if text in texts else []

    first = RhymeTarget(parse_form("quatrain"), table, encode)
    second = RhymeTarget(parse_form("sonnet"), table, encode)
    assert first.book is second.book  # built once, not once per poem
    assert (
        RhymeTarget(parse_form("quatrain"), table, encode, rhymes=lambda a, b: False).book
        is not first.book
    )
    other = TokenTable.from_texts(texts)
    assert RhymeTarget(parse_form("quatrain"), other, encode).book is not first.book


def test_a_line_whose_rhyme_yielded_is_missed() -> None:
    rhyme = rhyme_target("ABAB")
    assert not rhyme.missed(SimpleNamespace(text="walk the grey sea\n"))  # opens its group
    assert rhyme.missed(SimpleNamespace(text="walk under\n"))  # opens it on no rhyme at all
    assert not rhyme.missed(SimpleNamespace(text="the grey sea\nthe stars\nwalk under free\n"))
    assert rhyme.missed(SimpleNamespace(text="the grey sea\nthe stars\nwalk under cold\n"))
    assert rhyme.missed(SimpleNamespace(text="the grey sea\nthe stars\nwalk free\nthe cold\n\n"))
