"""The backend seam: what the engine needs from whatever runs the model.

A backend loads models (one per emotion; LoRA adapters on a shared base where it can), and runs
a batch of rows, each row with its own model (adapter), one forward per token on a KV cache.
Guidance (emotion and neutral rows), blends (k + 1 rows), batched writing, best-of-n lines and
co-writing candidates are all rows of such a batch. Rows step in lock-step: every row of a batch
holds the same number of positions, so `truncate` takes every row back together; to backtrack one
row alone, `fork` it into its own rows first or give it a batch of its own. The exception is a
batch whose rows can `join` it later (`JoinableRows`): a row that joins starts at its own first
position while the others run on (batched writing refills the places of poems that ended), and
such a batch is truncated only once it is down to one poem's rows.

`per_row_adapters` says whether rows with different adapters can share one forward: the torch
backend can (studio/core/fastlora.py); llama.cpp sets a LoRA per context, so such a backend runs
one context per adapter in lock-step and says False here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from studio.core.registry import ModelInfo
    from trainer.common.textformat import PoemTokens

# on_progress(fraction 0..1, message): loading reports its steps through this.
ProgressFn = Callable[[float, str], None]


class Model(Protocol):
    """A model ready to decode, as the engine sees it (the torch backend's is LoadedModel)."""

    @property
    def info(self) -> ModelInfo:
        """The registry entry it was loaded from."""
        ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """Its tokenizer (encode, decode, get_vocab)."""
        ...

    @property
    def context(self) -> int:
        """The most positions it can attend to."""
        ...

    @property
    def exempt(self) -> torch.Tensor:
        """Bool over the vocabulary: tokens no repetition rule may punish (on the device)."""
        ...

    @property
    def tokens(self) -> PoemTokens:
        """The ids that open and close a poem."""
        ...


class RowBatch(Protocol):
    """Rows decoding together, each with its model's KV cache (or its part of a shared one)."""

    @property
    def length(self) -> int:
        """Positions every row holds so far."""
        ...

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed `ids` ([1, tokens] for every row alike, or [rows, tokens]); return the last
        position's scores, [rows, vocab]."""
        ...

    def keep(self, indices: list[int]) -> None:
        """Keep the rows at `indices`, in that order (dropping the others)."""
        ...

    def fork(self, row: int, copies: int) -> None:
        """Replace `row` by `copies` rows in its place, each holding its prefix."""
        ...

    def truncate(self, length: int) -> None:
        """Take every row back to its first `length` positions (to rewrite what followed)."""
        ...


@runtime_checkable
class JoinableRows(RowBatch, Protocol):
    """A batch that new rows can join while it runs, each row then at its own position."""

    def join(self, models: list[Model], ids: torch.Tensor) -> torch.Tensor:
        """Add one row per model after the others, each fed `ids` ([1, tokens]) from its own
        first position; return the new rows' last scores, [new rows, vocab]. Rows then hold
        different lengths: `length` is the longest, and `truncate` is for a batch whose rows
        all hold it again (one poem's rows, once the others have left)."""
        ...


class Backend(Protocol):
    """Loads models and runs batches of rows on one device."""

    name: str  # as the status line and saved poems name it, e.g. "torch"
    per_row_adapters: bool  # rows with different adapters can share one forward

    @property
    def device(self) -> str:
        """The device models run on."""
        ...

    def load(self, info: ModelInfo, on_progress: ProgressFn | None = None) -> Model:
        """`info`'s model ready to decode, loading only what is not loaded yet."""
        ...

    def rows(self, models: list[Model]) -> RowBatch:
        """A new batch with one row per model, in order, empty caches."""
        ...

    def batch_key(self, models: list[Model]) -> Hashable | None:
        """Rows whose models have equal keys can share one batch; None: these rows batch only
        among themselves."""
        ...

    def dtype(self, model: Model) -> str:
        """What `model`'s weights are held in, e.g. fp32."""
        ...

    def decoding(self, threads: int | None) -> AbstractContextManager[None]:
        """Run the block as decoding: no gradients, `threads` CPU threads (None: as they are)."""
        ...
