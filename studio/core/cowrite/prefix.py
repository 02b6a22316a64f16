"""The KV cache of the accepted poem, kept between runs of candidates.

One batch of rows (the emotion's, and neutral's when guided) holds the poem read so far. A new run
reads only what changed: the ids past the longest prefix the cache already holds (an accepted
line's ids; after an undo or a rewrite, the cache is cut back first). Candidates fork the rows
into K copies, and `settle` takes the batch back to the poem and one set of rows when they end.
A cache belongs to its rows' models: another emotion, blend or strength opens a new batch, which
re-reads the poem once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from studio.core.generation.backends.base import Backend, Model, RowBatch


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids `a` and `b` share."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


def rows_key(rows: Sequence[Model]) -> tuple[object, ...]:
    """What a cache of `rows` is valid for: each row's model folder, on the weights and tokenizer
    now loaded (a backend may hand out a new handle for the same loaded model)."""
    return tuple((str(m.info.path), id(m.tokenizer), id(m.exempt)) for m in rows)


class PrefixCache:
    """The rows' cache of the poem so far, and the scores of the token that follows it."""

    def __init__(self) -> None:
        self.batch: RowBatch | None = None
        self.key: tuple[object, ...] | None = None
        self.width = 0  # rows per candidate
        self.ids: list[int] = []  # what the cache holds
        self.logits: torch.Tensor | None = None  # [width, vocab] after `ids`
        self.reads: list[int] = []  # the input length of each read, oldest first

    def read(self, backend: Backend, rows: list[Model], ids: list[int]) -> torch.Tensor:
        """The next token's scores after `ids` ([rows, vocab]), feeding only what the cache
        lacks. Call inside the backend's decoding context."""
        import torch

        key = rows_key(rows)
        if self.batch is None or key != self.key:
            self.batch, self.key, self.width = backend.rows(rows), key, len(rows)
            keep = 0
        else:
            keep = shared_prefix(self.ids, ids)
            if keep == len(ids) == len(self.ids) and self.logits is not None:
                return self.logits
            keep = min(keep, len(ids) - 1)  # the last id is fed again for its scores
            self.batch.truncate(keep)
        new = ids[keep:]
        device = rows[0].exempt.device
        self.logits = self.batch.forward(torch.tensor([new], dtype=torch.long, device=device))
        self.ids = list(ids)
        self.reads.append(len(new))
        return self.logits

    def fork(self, copies: int) -> RowBatch:
        """The batch with its rows repeated `copies` times (candidate c holds rows
        c*width .. c*width+width-1), each holding the poem."""
        assert self.batch is not None
        self.batch.keep(list(range(self.width)) * copies)
        return self.batch

    def settle(self, first_row: int) -> None:
        """Back to the poem alone: cut every row to it and keep the rows from `first_row`."""
        assert self.batch is not None
        self.batch.truncate(len(self.ids))
        self.batch.keep(list(range(first_row, first_row + self.width)))

    def drop(self) -> None:
        """Forget the cache (the next read re-reads the poem)."""
        self.batch = None
        self.key = None
        self.ids = []
        self.logits = None
