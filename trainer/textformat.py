"""How a poem becomes tokens, shared by training and generation so that both see one format.

A training example is `[bos] poem [eos]`; generation starts from `[bos] seed-line "\\n"` and the
model continues it. Tokenizers without a bos token use eos as the separator, as GPT-2 does.
"""

from __future__ import annotations

from typing import Any


def bos_id(tokenizer: Any) -> int:
    """The token that opens a poem: bos, or eos where the tokenizer has no bos."""
    token_id = tokenizer.bos_token_id
    if token_id is None:
        token_id = tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("tokenizer has neither a bos nor an eos token")
    return int(token_id)


def eos_id(tokenizer: Any) -> int:
    """The token that closes a poem."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token")
    return int(tokenizer.eos_token_id)


def poem_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one training example: bos, the poem's lines, eos."""
    body = tokenizer.encode(text.strip(), add_special_tokens=False)
    return [bos_id(tokenizer), *body, eos_id(tokenizer)]


def prompt_ids(tokenizer: Any, seed_line: str) -> list[int]:
    """Token ids that generation starts from: bos, then the seed line and a newline if given."""
    seed = seed_line.strip()
    if not seed:
        return [bos_id(tokenizer)]
    return [bos_id(tokenizer), *tokenizer.encode(seed + "\n", add_special_tokens=False)]
