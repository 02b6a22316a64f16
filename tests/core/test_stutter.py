"""The stutter guard forbids a word right after itself and penalises a content word's reuse,
whatever the tokenizer splits the words into: byte-level BPE (GPT-2, SmolLM2) and a
SentencePiece-style one, each trained here on a few verses, with hand-written scores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from studio.core.stutter import REUSE_PENALTY, StutterGuard, word_table
from trainer.common.home import DataHome

# Frequent words become single tokens; "lest" and "weeks" stay rare, so they are spelled in
# several pieces.
VERSES = (
    "hate and love and the sea, love and hate and the sea, trust the sea and the love of hate\n"
    "the truth\u2019s in love\n" * 30 + "lest we forget the weeks of days gone by\n"
)
SPELLINGS = ("{w}", " {w}", "{W}", " {W}", "\n{W}")


def _byte_level() -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([VERSES], vocab_size=300, min_frequency=2, special_tokens=["<eos>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>")


def _sentencepiece_like() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    sp = Tokenizer(models.BPE(unk_token="<unk>"))
    sp.pre_tokenizer = pre_tokenizers.Metaspace()
    sp.decoder = decoders.Metaspace()
    alphabet = sorted(set(VERSES.lower() + VERSES.upper()))
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<eos>"], initial_alphabet=alphabet
    )
    sp.train_from_iterator([VERSES], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=sp, unk_token="<unk>", eos_token="<eos>")


TOKENIZERS: dict[str, Callable[[], Any]] = {
    "byte-level": _byte_level,
    "sentencepiece": _sentencepiece_like,
}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request: pytest.FixtureRequest) -> Any:
    return TOKENIZERS[request.param]()


def _guard(tokenizer: Any, text: str) -> StutterGuard:
    return StutterGuard(tokenizer, tokenizer.encode(text, add_special_tokens=False))


def _forbidden_on_the_way(guard: StutterGuard, tokenizer: Any, spelling: str) -> bool:
    """Whether some token of `spelling` (as the tokenizer splits it) is forbidden when due."""
    scores = torch.zeros(len(tokenizer))
    for token in tokenizer.encode(spelling, add_special_tokens=False):
        if guard.adjust(scores)[token] == float("-inf"):
            return True
        guard.observe(token)
    return False


@pytest.mark.parametrize("before", ["Hate, ", "hate ", "HATE;\n", "the weeks, ", "and lest "])
def test_a_word_cannot_follow_itself_however_it_is_spelled(tokenizer: Any, before: str) -> None:
    word = before.split()[-1].strip(",;").lower()
    for spelling in SPELLINGS:
        text = spelling.format(w=word, W=word.capitalize())
        if before.endswith((" ", "\n")) and text.startswith((" ", "\n")):
            text = text.lstrip(" ")
        guard = _guard(tokenizer, before)
        assert _forbidden_on_the_way(guard, tokenizer, text), (before, text)


@pytest.mark.parametrize(
    ("before", "after"), [("Hate, ", "love"), ("the sea ", "trust"), ("lest ", "let")]
)
def test_other_words_may_follow(tokenizer: Any, before: str, after: str) -> None:
    assert not _forbidden_on_the_way(_guard(tokenizer, before), tokenizer, after)


def test_a_word_may_come_back_after_another(tokenizer: Any) -> None:
    guard = _guard(tokenizer, "hate and ")
    assert not _forbidden_on_the_way(guard, tokenizer, "hate")


def test_a_content_word_costs_more_with_each_use(tokenizer: Any) -> None:
    (love,) = word_table(tokenizer).starts["love"][:1]
    scores = torch.full((len(tokenizer),), 2.0)
    for uses in range(4):
        text = "the sea and " * 2 + "love and " * uses
        guard = _guard(tokenizer, text)
        assert guard.adjust(scores)[love] == pytest.approx(2.0 - uses * REUSE_PENALTY)
    # Stop words are free to come back: "the" and "and" came twice and more.
    (the,) = word_table(tokenizer).starts["the"][:1]
    assert _guard(tokenizer, text).adjust(scores)[the] == 2.0


def test_the_scores_given_are_left_alone(tokenizer: Any) -> None:
    scores = torch.zeros(len(tokenizer))
    _guard(tokenizer, "love and love, ").adjust(scores)
    assert bool((scores == 0).all())


def test_typographic_apostrophes_stay_inside_words(tokenizer: Any) -> None:
    guard = _guard(tokenizer, "truth\u2019s love and ")
    assert guard.last == "and" and guard.uses["truth's"] == 1 and "s" not in guard.uses


def test_a_word_still_cannot_follow_itself_when_it_is_all_the_restriction_allows(
    tokenizer: Any,
) -> None:
    from studio.core.generation.chain import Chain
    from studio.core.generation.draw import Draw
    from studio.core.generation.processors.base import Processor
    from studio.core.generation.processors.stutter import Stutter
    from studio.core.generation.state import PoemState

    (hate,) = tokenizer.encode(" hate", add_special_tokens=False)
    vocab = len(tokenizer)
    allowed = torch.zeros(vocab, dtype=torch.bool)
    allowed[hate] = True  # a guidance nucleus of one token: the stutter

    class Nucleus(Processor):
        yields_first = True  # as guidance's nucleus: relaxed before the guard

        def rescore(self, state: Any, scores: Any, relaxed: bool) -> Any:
            return scores if relaxed else scores.masked_fill(~allowed, float("-inf"))

    prompt = [0, *tokenizer.encode("hate,", add_special_tokens=False)]
    state = PoemState(prompt, torch.zeros(vocab, dtype=torch.bool), eos=1)
    guard = Stutter(StutterGuard(tokenizer, state.history))
    draw = Draw(SamplingParams(temperature=0.0), 0, torch.device("cpu"))
    logits = torch.zeros(vocab)
    logits[hate] = 10.0
    assert Chain([Nucleus(), guard], draw).choose(state, logits[None]) != hate


def test_the_table_is_computed_once_per_tokenizer(tokenizer: Any) -> None:
    assert word_table(tokenizer) is word_table(tokenizer)


def _scripted_poet(poet: Poet, monkeypatch: pytest.MonkeyPatch, part: str) -> None:
    """Make `poet`'s joy model want `part` again and again under greedy decoding."""
    from studio.core.loader import LoadedModel

    real = poet.loader.load(poet.model_info("joy"))
    script = real.tokenizer.encode(part, add_special_tokens=False)

    class Looping:
        calls = 0

        def __call__(self, **kwargs: Any) -> Any:
            logits = torch.zeros(1, 1, real.exempt.shape[0])
            logits[0, 0, script[self.calls % len(script)]] = 100.0
            self.calls += 1
            return type("Out", (), {real.cache_arg: None, "logits": logits})()

    model = LoadedModel(
        info=real.info,
        module=Looping(),
        tokenizer=real.tokenizer,
        context=real.context,
        exempt=real.exempt,
        tokens=real.tokens,
    )
    monkeypatch.setattr(poet.loader, "load", lambda info, on_progress=None: model)


@pytest.mark.parametrize("guard", [True, False])
def test_poems_are_guarded_by_default(
    tiny_base: Path, home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guard: bool
) -> None:
    from tests.helpers.models import build_tiny_lora

    build_tiny_lora(tiny_base, home.models / "joy", "joy", seed=1)
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled")
    _scripted_poet(poet, monkeypatch, " grave,")
    settings = {"temperature": 0.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    params = SamplingParams(**settings, max_new_tokens=12, stutter_guard=guard, strength=0)
    text = "".join(poet.stream_poem("joy", "", params))
    assert ("grave, grave" in text) is not guard
