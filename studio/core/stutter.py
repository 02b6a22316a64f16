"""The stutter guard: a decoding rule against "Hate, hate, hate" and "love" eight times a poem.

Sampling works on tokens, stutter happens in words, so the guard follows the words the poem
spells. A word is a run of ASCII letters and apostrophes (' or ’), compared lowercased, as the
`eval` stutter measure (trainer.evaluation.metrics.stutter_reason) reads them. At every step it
- forbids any token that would make the next word repeat the last finished one (case and the
  punctuation or line breaks between them do not matter), and
- lowers the score of a token that would spell a content word (one outside
  trainer.evaluation.stopwords.STOPWORDS) by REUSE_PENALTY for each time the poem, its first
  line included, already used that word.

"Would spell W" is decided per token from its text: a token spells W when its first run of word
characters, where a new word begins, is W (" hate", "Hate", ", hate"). A word of several tokens
(" l" + "est") is caught on its last piece: when the open word "l" plus a token's leading letters
("est") make W. So the rule holds on any tokenizer whose tokens decode to text, byte-level BPE
(GPT-2, SmolLM2) and SentencePiece alike. A token is taken as W even if more letters could follow
(" hate" before "ful"); that costs the model one way of spelling "hateful" right after "hate".

What depends only on the tokenizer (each token's text and leading word) is computed once per
tokenizer and cached; a guard holds one poem's words.
"""

from __future__ import annotations

import functools
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainer.evaluation.stopwords import is_content_word

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# Logit units taken off a content word's tokens per earlier use in the poem: its 2nd use costs
# 1.5, a 4th 4.5 (a hundredth of its chance at temperature 0.8), on top of the token-level
# repetition penalty.
REUSE_PENALTY = 1.5
# Word characters: ASCII letters and apostrophes, the typographic one read as the plain one.
_WORD_CHARS = frozenset(string.ascii_letters + "'\u2019")


def _leading_run(text: str) -> str:
    """The lowercased run of word characters that `text` starts with ("" if none)."""
    end = 0
    while end < len(text) and text[end] in _WORD_CHARS:
        end += 1
    return text[:end].lower().replace("\u2019", "'")


def _has_letter(word: str) -> bool:
    return any(ch != "'" for ch in word)


@dataclass(frozen=True)
class WordTable:
    """What the guard needs of a tokenizer: each token's text, and its tokens by leading word.

    `starts[w]`: tokens whose text opens with non-word characters then the word w (" hate",
    ", hate"): they end any open word and begin w. `bare[w]`: tokens whose text opens with w
    itself ("hate", "est"): they begin w between words, and extend an open word otherwise.
    """

    pieces: tuple[str, ...]
    starts: dict[str, tuple[int, ...]]
    bare: dict[str, tuple[int, ...]]


def _token_texts(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Each token's text as it reads inside a poem, its leading space included.

    SentencePiece decoders drop a leading space at the start of a text, so each token is
    decoded after an anchor token and the anchor's own text is cut off.
    """
    size = len(tokenizer)
    anchor = tokenizer.encode("a", add_special_tokens=False)[-1:]
    # transformers types batch_decode without overloads; lists of ids decode to strs.
    head: str = tokenizer.decode(anchor, skip_special_tokens=True)  # type: ignore[assignment]
    pairs = tokenizer.batch_decode([[*anchor, i] for i in range(size)], skip_special_tokens=True)
    alone = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=True)
    return [
        pair[len(head) :] if anchor and pair.startswith(head) else single
        for pair, single in zip(pairs, alone, strict=True)
    ]


@functools.lru_cache(maxsize=4)
def word_table(tokenizer: PreTrainedTokenizerBase) -> WordTable:
    """The WordTable of a tokenizer (cached per tokenizer: about 1 s for SmolLM2's 49,152)."""
    pieces = _token_texts(tokenizer)
    starts: dict[str, list[int]] = {}
    bare: dict[str, list[int]] = {}
    for token, text in enumerate(pieces):
        lead = next((i for i, ch in enumerate(text) if ch in _WORD_CHARS), len(text))
        word = _leading_run(text[lead:])
        if _has_letter(word):
            (starts if lead else bare).setdefault(word, []).append(token)
    return WordTable(
        tuple(pieces),
        {w: tuple(ids) for w, ids in starts.items()},
        {w: tuple(ids) for w, ids in bare.items()},
    )


class StutterGuard:
    """One poem's stutter guard: `observe` each token the poem takes (the first line's too),
    and `adjust` the scores of the next token before sampling."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        prompt: Sequence[int] = (),
        penalty: float = REUSE_PENALTY,
    ) -> None:
        self.table = word_table(tokenizer)
        self.penalty = penalty
        self.open = ""  # the word being spelled, lowercased; "" between words
        self.last = ""  # the last finished word
        self.uses: Counter[str] = Counter()  # content words finished so far
        for token in prompt:
            self.observe(token)

    def observe(self, token_id: int) -> None:
        """Follow the poem's words through one more token."""
        if not 0 <= token_id < len(self.table.pieces):
            return
        for ch in self.table.pieces[token_id]:
            if ch in _WORD_CHARS:
                self.open += "'" if ch == "\u2019" else ch.lower()
            elif self.open:
                self._finish()

    def _finish(self) -> None:
        word, self.open = self.open, ""
        if _has_letter(word):
            self.last = word
            if is_content_word(word):
                self.uses[word] += 1

    def _rules(self) -> tuple[list[int], dict[int, float]]:
        """The tokens to forbid next, and the penalty of each token to lower."""
        table, word = self.table, self.open
        banned: list[int] = []
        lowered: dict[int, float] = {}

        def lower(tokens: Sequence[int], amount: float) -> None:
            for token in tokens:
                lowered[token] = amount

        if not word:
            # Between words: whatever begins a word begins the next one.
            banned += table.starts.get(self.last, ()) + table.bare.get(self.last, ())
            for used, count in self.uses.items():
                lower(table.starts.get(used, ()) + table.bare.get(used, ()), count * self.penalty)
            return banned, lowered
        # Inside a word: a token with a leading break ends it and begins another, which must not
        # be this one again; a token without one extends it, which must not complete the last.
        if _has_letter(word):
            banned += table.starts.get(word, ())
        if len(self.last) > len(word) and self.last.startswith(word):
            banned += table.bare.get(self.last[len(word) :], ())
        for used, count in self.uses.items():
            lower(table.starts.get(used, ()), count * self.penalty)
            if len(used) > len(word) and used.startswith(word):
                lower(table.bare.get(used[len(word) :], ()), count * self.penalty)
        return banned, lowered

    def adjust(self, scores: torch.Tensor) -> torch.Tensor:
        """The next token's scores (1-D, logit scale) with the guard's ban and penalties."""
        import torch

        banned, lowered = self._rules()
        if not banned and not lowered:
            return scores
        scores = scores.clone()
        size = scores.shape[0]
        if lowered:
            ids = [token for token in lowered if token < size]
            amounts = torch.tensor([lowered[t] for t in ids], dtype=scores.dtype)
            index = torch.tensor(ids, dtype=torch.long, device=scores.device)
            scores[index] -= amounts.to(scores.device)
        if banned:
            ids = [token for token in banned if token < size]
            scores[torch.tensor(ids, dtype=torch.long, device=scores.device)] = float("-inf")
        return scores
