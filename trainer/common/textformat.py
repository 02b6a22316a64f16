"""How a poem becomes tokens, shared by training and generation so that both see one format.

A training example is `[bos] poem [eos]`; generation starts from `[bos] first-line "\\n"` and the
model continues it. Tokenizers without a bos token use eos as the separator, as GPT-2 does.

Each model's manifest records the two ids it was trained with (`poem_tokens`), because one base
can come out of different conversions with different special tokens: generation and evaluation
use the recorded ids, so a model always stops where it learned to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def bos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that opens a poem: bos, or eos where the tokenizer has no bos."""
    token_id = tokenizer.bos_token_id
    if token_id is None:
        token_id = tokenizer.eos_token_id
    if token_id is None:
        raise ValueError("tokenizer has neither a bos nor an eos token")
    return int(token_id)


def eos_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The token that closes a poem."""
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has no eos token")
    return int(tokenizer.eos_token_id)


@dataclass(frozen=True)
class PoemTokens:
    """The ids that open and close a poem for one model."""

    bos: int
    eos: int

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> PoemTokens:
        """The tokenizer's own poem ids."""
        return cls(bos_id(tokenizer), eos_id(tokenizer))

    @classmethod
    def recorded(
        cls, manifest: dict[str, Any] | None, tokenizer: PreTrainedTokenizerBase
    ) -> PoemTokens:
        """The ids a manifest records; the tokenizer's for models trained before they were."""
        found = (manifest or {}).get("poem_tokens")
        if isinstance(found, dict):
            bos, eos = found.get("bos"), found.get("eos")
            if isinstance(bos, int) and isinstance(eos, int) and min(bos, eos) >= 0:
                return cls(bos, eos)
        return cls.of(tokenizer)

    def as_dict(self) -> dict[str, int]:
        """The manifest form."""
        return {"bos": self.bos, "eos": self.eos}


def poem_ids(tokenizer: PreTrainedTokenizerBase, text: str, tokens: PoemTokens) -> list[int]:
    """Token ids of one training example: bos, the poem's lines, eos."""
    body = tokenizer.encode(text.strip(), add_special_tokens=False)
    return [tokens.bos, *body, tokens.eos]


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, first_line: str, tokens: PoemTokens
) -> list[int]:
    """Token ids that generation starts from: bos, then the first line and a newline if given."""
    first = first_line.strip()
    if not first:
        return [tokens.bos]
    return [tokens.bos, *tokenizer.encode(first + "\n", add_special_tokens=False)]
