"""A model's vocabulary as form constraints see it (studio/core/formtokens.py), built once per
tokenizer, and its per-token masks as tensors on the model's device, built once per mask."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from studio.core.formtokens import Kind, TokenTable

if TYPE_CHECKING:
    import torch

    from studio.core.generation.backends.base import Model

# (tokenizer id, vocabulary size) -> (the tokenizer, kept so that its id is never reused; table)
_TABLES: dict[tuple[int, int], tuple[Any, TokenTable]] = {}
# (id of per-token values, device, dtype) -> (the values, kept alive; the tensor)
_TENSORS: dict[tuple[int, str, str], tuple[Sequence[Any], torch.Tensor]] = {}


def token_table(model: Model) -> TokenTable:
    """The token table of `model`'s tokenizer, over its whole (maybe padded) vocabulary."""
    size = int(model.exempt.shape[0])
    key = (id(model.tokenizer), size)
    if key not in _TABLES:
        _TABLES[key] = (model.tokenizer, TokenTable.from_tokenizer(model.tokenizer, size))
    return _TABLES[key][1]


def encoder(model: Model) -> Any:
    """`text -> token ids` for `model`, without special tokens."""
    return lambda text: model.tokenizer.encode(text, add_special_tokens=False)


def mask_tensor(flags: Sequence[bool], device: torch.device) -> torch.Tensor:
    """`flags` (one per token id, True: allowed) as a bool tensor; cached while `flags` lives."""
    return _tensor_of(flags, device, "bool")


def count_tensor(counts: Sequence[int], device: torch.device) -> torch.Tensor:
    """`counts` (one per token id, e.g. a token table's syllables) as an integer tensor; cached
    while `counts` lives."""
    return _tensor_of(counts, device, "long")


def _tensor_of(values: Sequence[Any], device: torch.device, dtype: str) -> torch.Tensor:
    import torch

    key = (id(values), str(device), dtype)
    cached = _TENSORS.get(key)
    if cached is None or cached[0] is not values:
        tensor = torch.tensor(values, dtype=getattr(torch, dtype), device=device)
        cached = _TENSORS[key] = (values, tensor)
    return cached[1]


T = TypeVar("T")
# (id of a table, what was built) -> (the table, kept so that its id is never reused; the value)
_PER_TABLE: dict[tuple[int, Hashable], tuple[TokenTable, Any]] = {}


def per_table(table: TokenTable, what: Hashable, build: Callable[[TokenTable], T]) -> T:
    """`build(table)`, built once per table and `what` (which names it) and shared by every poem
    (a processor lives for one poem; what it reads off the vocabulary lives as long as the
    tokenizer)."""
    key = (id(table), what)
    cached = _PER_TABLE.get(key)
    if cached is None or cached[0] is not table:
        cached = _PER_TABLE[key] = (table, build(table))
    value: T = cached[1]
    return value


def kinds_mask(table: TokenTable, kinds: Iterable[Kind], device: torch.device) -> torch.Tensor:
    """Which tokens are of one of `kinds`."""
    wanted = frozenset(kinds)
    flags = per_table(table, wanted, lambda t: tuple(k in wanted for k in t.kinds))
    return mask_tensor(flags, device)


def ids_mask(ids: Iterable[int], size: int, device: torch.device) -> torch.Tensor:
    """A mask allowing exactly `ids`."""
    import torch

    mask = torch.zeros(size, dtype=torch.bool, device=device)
    chosen = list(ids)
    if chosen:
        mask[torch.tensor(chosen, device=device)] = True
    return mask
