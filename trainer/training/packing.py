"""Training data as packed blocks: poems laid end to end, so almost no compute goes to padding.

Each poem is `[bos] poem [eos]` (trainer/common/textformat.py), the format generation starts from.
Poems are shuffled once with the run's seed, concatenated, and cut into blocks of `block_size`
tokens. Only the very last block can be short; it is filled with eos whose labels are -100, so
padding never counts in the loss. A block may span the end of one poem and the start of the next;
the bos/eos pair between them is what teaches the model where a poem ends.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.textformat import PoemTokens, poem_ids

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORE = -100  # the label value the loss skips
# Fewer training poems than this make a model that only parrots them; refuse and say so.
MIN_TRAIN_POEMS = 50
# Fewer real tokens than this per poem, on average, means the tokenizer lost the text (it only
# knows the markers, or maps every word to one unknown token): such a run "learns" to predict
# the markers, reaches a perfect-looking loss, and would replace a model with nothing.
MIN_TOKENS_PER_POEM = 4


@dataclass
class Packed:
    """Blocks of token ids, their labels (-100 on padding), and how many tokens are real."""

    input_ids: torch.Tensor  # long [blocks, block_size]
    labels: torch.Tensor  # long [blocks, block_size]
    content_tokens: int
    poems: int

    @property
    def blocks(self) -> int:
        """Number of blocks."""
        return int(self.input_ids.shape[0])


def pack(sequences: Iterable[list[int]], block_size: int, pad_id: int) -> Packed:
    """Concatenate token sequences and cut them into full blocks; pad only the last one."""
    import torch

    stream: list[int] = []
    poems = 0
    for sequence in sequences:
        stream.extend(sequence)
        poems += 1
    content = len(stream)
    blocks = max(1, -(-content // block_size))
    ids = torch.full((blocks * block_size,), pad_id, dtype=torch.long)
    labels = torch.full((blocks * block_size,), IGNORE, dtype=torch.long)
    if content:
        ids[:content] = torch.tensor(stream, dtype=torch.long)
        labels[:content] = ids[:content]
    return Packed(
        input_ids=ids.view(blocks, block_size),
        labels=labels.view(blocks, block_size),
        content_tokens=content,
        poems=poems,
    )


def tokenize_poems(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], tokens: PoemTokens
) -> list[list[int]]:
    """Every poem in the shared training format."""
    return [poem_ids(tokenizer, text, tokens) for text in texts]


def real_tokens(tokenizer: PreTrainedTokenizerBase, ids: list[int], tokens: PoemTokens) -> int:
    """How many of `ids` carry text: neither a poem marker nor a special (unknown, pad) token."""
    special = {tokens.bos, tokens.eos, *(getattr(tokenizer, "all_special_ids", None) or ())}
    return sum(1 for token in ids if token not in special)


def check_real_tokens(
    tokenizer: PreTrainedTokenizerBase, sequences: list[list[int]], tokens: PoemTokens, what: str
) -> None:
    """Refuse poems the tokenizer turns into (almost) nothing, naming the tokenizer."""
    if not sequences:
        return
    total = sum(real_tokens(tokenizer, ids, tokens) for ids in sequences)
    mean = total / len(sequences)
    if mean < MIN_TOKENS_PER_POEM:
        name = getattr(tokenizer, "name_or_path", "") or "?"
        raise PoetstudioError(
            f"the tokenizer of {name} ({type(tokenizer).__name__}) turns the {len(sequences)} "
            f"{what} into {mean:.1f} real tokens each on average (at least "
            f"{MIN_TOKENS_PER_POEM} are needed): it cannot read this text, so training would "
            "learn nothing; use a base whose tokenizer covers it"
        )


@dataclass(frozen=True)
class DataSpec:
    """Which poems a run reads and how it packs them: the same for training and `eval`."""

    dataset: str
    label: str
    block_size: int
    max_words: int
    seed: int
    eval_blocks: int


@dataclass
class TrainingData:
    """The packed train and validation sets of one run, and where they came from."""

    train: Packed
    valid: Packed
    dataset: dict[str, Any]  # name, manifest hash and sizes, for the model's manifest


def label_texts(home: DataHome, dataset: str, label: str, split: str, max_words: int) -> list[str]:
    """The texts of `label`'s poems in one split, at most `max_words` words each."""
    from trainer.corpus.dataset import iter_poems

    return [
        poem.text
        for poem in iter_poems(home, dataset, split=split, labels=[label])
        if poem.words <= max_words
    ]


def load_training_data(
    home: DataHome, tokenizer: PreTrainedTokenizerBase, spec: DataSpec, tokens: PoemTokens
) -> TrainingData:
    """Read the spec's poems from the dataset, shuffle them with its seed, and pack both splits."""
    from trainer.corpus.dataset import load_manifest

    manifest = load_manifest(home, spec.dataset)
    train_texts = label_texts(home, spec.dataset, spec.label, "train", spec.max_words)
    if len(train_texts) < MIN_TRAIN_POEMS:
        raise PoetstudioError(
            f"only {len(train_texts)} {spec.label} poems of at most {spec.max_words} words in "
            f"dataset {spec.dataset!r}; training needs at least {MIN_TRAIN_POEMS}"
        )
    rng = random.Random(spec.seed)
    rng.shuffle(train_texts)
    sequences = tokenize_poems(tokenizer, train_texts, tokens)
    what = f"{spec.label} poems of dataset {spec.dataset!r}"
    check_real_tokens(tokenizer, sequences, tokens, what)
    train = pack(sequences, spec.block_size, tokens.eos)
    valid = valid_blocks(home, tokenizer, spec, tokens)
    info = {
        "name": spec.dataset,
        "manifest_sha256": _manifest_hash(home, spec.dataset),
        "poems_total": manifest["poems"],
        "label": spec.label,
        "train_poems": train.poems,
        "valid_poems": valid.poems,
        "train_tokens": train.content_tokens,
        "max_words": spec.max_words,
    }
    return TrainingData(train=train, valid=valid, dataset=info)


def valid_blocks(
    home: DataHome, tokenizer: PreTrainedTokenizerBase, spec: DataSpec, tokens: PoemTokens
) -> Packed:
    """The first `eval_blocks` packed blocks of the spec's shuffled validation poems.

    Training and `poetstudio eval` both measure perplexity on these, so their figures agree.
    """
    valid_texts = label_texts(home, spec.dataset, spec.label, "valid", spec.max_words)
    if not valid_texts:
        raise PoetstudioError(
            f"dataset {spec.dataset!r} has no {spec.label} poems in its valid split to measure "
            "progress on"
        )
    # Its own generator, so the sample does not depend on how many training poems there are.
    random.Random(f"valid-{spec.seed}").shuffle(valid_texts)
    valid = pack(tokenize_poems(tokenizer, valid_texts, tokens), spec.block_size, tokens.eos)
    if valid.blocks <= spec.eval_blocks:
        return valid
    return Packed(
        input_ids=valid.input_ids[: spec.eval_blocks],
        labels=valid.labels[: spec.eval_blocks],
        content_tokens=int((valid.labels[: spec.eval_blocks] != IGNORE).sum()),
        poems=valid.poems,
    )


def _manifest_hash(home: DataHome, dataset: str) -> str:
    import hashlib

    from trainer.corpus.dataset import dataset_dir

    return hashlib.sha256((dataset_dir(home, dataset) / "manifest.json").read_bytes()).hexdigest()
