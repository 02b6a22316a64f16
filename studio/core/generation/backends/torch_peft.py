"""The torch backend: transformers models with peft's LoRA adapters, one base shared by them all.

Rows of one full model, or of LoRA adapters on one loaded base, run as one batched forward on one
KV cache (each row its own adapter through studio/core/fastlora.py's per-row forward); any other
mix runs one forward per row, each with its own cache.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any, cast

from studio.core.generation.backends.base import ProgressFn
from studio.core.generation.backends.rowcache import row_cache
from studio.core.loader import LoadedModel, ModelLoader

if TYPE_CHECKING:
    import torch

    from studio.core.generation.backends.base import Model
    from studio.core.registry import ModelInfo


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch threads (None: leave them alone), then restore."""
    import torch

    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class RowForward:
    """Next-token logits of several models, one batch row each, with their KV caches."""

    def __init__(self, loader: ModelLoader, models: list[LoadedModel]) -> None:
        self.loader = loader
        self.models = list(models)
        self.caches: list[Any] = [row_cache() for _ in models]
        self.length = 0
        # Leading positions each row masks: a row that joined later holds fewer than `length`.
        self.pads = [0] * len(models)
        with loader.lock:
            self.batched = len(models) > 1 and self._activate()

    def _activate(self) -> bool:
        first = self.models[0]
        if all(m.adapter is None and m.module is first.module for m in self.models):
            return True
        return self.loader.activate_rows(self.models)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed `ids` ([1, tokens] for every row alike, or [rows, tokens]); return the last
        position's logits, [rows, vocab]."""
        import torch

        with self.loader.lock:
            past = self.length
            self.length += ids.shape[1]
            if self.batched:
                self._activate()
                model = self.models[0]
                rows = ids.expand(len(self.models), -1) if ids.shape[0] == 1 else ids
                out = model.module(
                    input_ids=rows,
                    use_cache=True,
                    logits_to_keep=1,
                    **{model.cache_arg: self.caches[0]},
                    **(self._padding(past, rows.device) if any(self.pads) else {}),
                )
                self.caches[0] = getattr(out, model.cache_arg)
                return out.logits[:, -1]
            logits = []
            for index, model in enumerate(self.models):
                self.loader.activate(model)
                out = model.module(
                    input_ids=ids if ids.shape[0] == 1 else ids[index : index + 1],
                    use_cache=True,
                    logits_to_keep=1,
                    **{model.cache_arg: self.caches[index]},
                )
                self.caches[index] = getattr(out, model.cache_arg)
                logits.append(out.logits[0, -1])
            return torch.stack(logits)

    def keep(self, indices: list[int]) -> None:
        """Keep only the rows at `indices` (in that order), their caches included; an index
        given twice copies its row."""
        import torch

        self.models = [self.models[i] for i in indices]
        self.pads = [self.pads[i] for i in indices]
        if not self.batched and len(self.caches) == 1 and len(indices) > 1:
            with self.loader.lock:
                self.batched = self._activate()
            if self.batched:  # one row forked into copies: they share one forward from now on
                self.caches[0].batch_select_indices(torch.tensor(indices))
                return
        if not self.batched:
            taken: set[int] = set()
            caches = []
            for i in indices:
                cache = self.caches[i]
                caches.append(copy.deepcopy(cache) if i in taken else cache)
                taken.add(i)
            self.caches = caches
        else:
            self.caches[0].batch_select_indices(torch.tensor(indices))
            self._trim()

    def join(self, models: list[Model], ids: torch.Tensor) -> torch.Tensor:
        """Add one row per model after the others, each fed `ids` from its own first position
        (the positions it lacks are masked); return the new rows' last logits."""
        import torch

        if not self._shares_cache() or self.length == 0:
            raise ValueError("rows join a batch that shares one cache and has run")
        new = RowForward(self.loader, cast("list[LoadedModel]", models))
        if not new._shares_cache():
            raise ValueError("joining rows must share one forward")
        logits = new.forward(ids)
        width = max(self.length, new.length)
        for mine, theirs in zip(self.caches[0].layers, new.caches[0].layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat(
                [_left_pad(mine.values, width), _left_pad(theirs.values, width)]
            )
        self.pads = [pad + width - self.length for pad in self.pads] + [
            pad + width - new.length for pad in new.pads
        ]
        self.models += new.models
        self.length = width
        with self.loader.lock:
            self.batched = self._activate()
        if not self.batched:
            raise ValueError("joining rows must share one forward with the batch")
        return logits

    def _shares_cache(self) -> bool:
        """Whether every row lives in `caches[0]` (a batched forward, or a single row)."""
        return self.batched or len(self.models) == 1

    def _padding(self, past: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The attention mask and positions that hide each row's leading pads from it."""
        import torch

        pads = torch.tensor(self.pads, device=device)[:, None]
        columns = torch.arange(self.length, device=device)[None, :]
        mask = (columns >= pads).long()
        return {"attention_mask": mask, "position_ids": columns[:, past:] - pads}

    def _trim(self) -> None:
        """Drop the leading positions every row masks (the rows that held them have left)."""
        drop = min(self.pads, default=0)
        if drop == 0:
            return
        for layer in self.caches[0].layers:
            layer.keys = layer.keys[:, :, drop:]
            layer.values = layer.values[:, :, drop:]
        self.pads = [pad - drop for pad in self.pads]
        self.length -= drop

    def fork(self, row: int, copies: int) -> None:
        """Replace `row` by `copies` rows in its place, each holding its prefix."""
        count = len(self.models)
        # Rows run one forward each keep one cache each (copied); a batched forward's adapters
        # follow the new rows at the next forward.
        self.keep([*range(row), *[row] * copies, *range(row + 1, count)])

    def truncate(self, length: int) -> None:
        """Take every row back to its first `length` positions."""
        drop = self.length - length
        if drop <= 0:
            return
        for cache in self.caches:
            cache.crop(-drop)  # a negative count drops that many positions from the end
        self.length = length


def _left_pad(states: torch.Tensor, width: int) -> torch.Tensor:
    """`states` ([rows, heads, positions, dim]) with zeros before its positions, to `width`."""
    import torch

    missing = width - states.shape[-2]
    if missing == 0:
        return states
    shape = (*states.shape[:-2], missing, states.shape[-1])
    return torch.cat([states.new_zeros(shape), states], dim=-2)


class TorchBackend:
    """transformers and peft on the device the loader picked."""

    name = "torch"
    per_row_adapters = True

    def __init__(self, loader: ModelLoader) -> None:
        self.loader = loader

    @property
    def device(self) -> str:
        """The device models run on (importing torch on first use)."""
        return self.loader.device

    def load(self, info: ModelInfo, on_progress: ProgressFn | None = None) -> LoadedModel:
        """`info`'s model ready to decode; a LoRA adapter joins its base's other adapters."""
        return self.loader.load(info, on_progress)

    def rows(self, models: list[Model]) -> RowForward:
        """A new batch with one row per model (each one this backend loaded)."""
        return RowForward(self.loader, cast("list[LoadedModel]", models))

    def batch_key(self, models: list[Model]) -> Hashable | None:
        """Rows of one full model, or of adapters on one base, share a forward."""
        loaded = cast("list[LoadedModel]", models)
        first = loaded[0]
        if all(row.adapter is None and row.module is first.module for row in loaded):
            return ("module", id(first.module))
        if all(row.adapter is not None and row.base is first.base for row in loaded):
            return ("base", id(first.base))
        return None

    def dtype(self, model: Model) -> str:
        """What `model`'s weights are held in: fp32, bf16 or fp16."""
        dtype = str(getattr(cast("LoadedModel", model).module, "dtype", "unknown"))
        dtype = dtype.removeprefix("torch.")
        return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(dtype, dtype)

    @contextlib.contextmanager
    def decoding(self, threads: int | None) -> Iterator[None]:
        """No autograd, and `threads` torch threads on a CPU."""
        import torch

        with torch.inference_mode(), torch_threads(threads):
            yield
