"""The poem format's token ids: the tokenizer's, or the ones a model's manifest records."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from trainer.common.textformat import PoemTokens, poem_ids, prompt_ids


def test_recorded_ids_win_over_the_tokenizer(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    own = PoemTokens.of(tokenizer)
    assert PoemTokens.recorded(None, tokenizer) == own
    assert PoemTokens.recorded({}, tokenizer) == own
    assert PoemTokens.recorded({"poem_tokens": {"bos": 4, "eos": 5}}, tokenizer) == PoemTokens(4, 5)
    # A damaged entry falls back to the tokenizer rather than guessing.
    for bad in ({"bos": "1", "eos": 2}, {"bos": 1}, {"bos": -1, "eos": 2}, [1, 2]):
        assert PoemTokens.recorded({"poem_tokens": bad}, tokenizer) == own


def test_training_and_prompts_use_the_given_ids(tiny_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    tokens = PoemTokens(bos=4, eos=5)
    body = tokenizer.encode("the sea", add_special_tokens=False)
    assert poem_ids(tokenizer, "the sea", tokens) == [4, *body, 5]
    assert prompt_ids(tokenizer, "", tokens) == [4]
    assert prompt_ids(tokenizer, "the sea", tokens)[0] == 4
