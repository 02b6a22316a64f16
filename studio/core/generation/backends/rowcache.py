"""The torch backend's KV cache: each layer's keys and values in buffers with room to grow.

transformers' dynamic cache concatenates every new position onto the whole cache, copying it at
each token; at a batch of 128 rows (eval's batched writing) that copy outweighed the forward
itself. Here a position is written into room kept after the last one, and the buffers are grown
by half again when full. Anything that replaces a layer's tensors (rows selected, positions
dropped from the front) leaves them valid: a view into the buffer keeps using the room after it,
and any other tensor is moved into a new buffer at the next position.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MIN_ROOM = 64  # positions a new buffer holds beyond those written


def row_cache() -> Any:
    """An empty cache whose layers grow into room (a transformers `Cache`)."""
    from transformers.cache_utils import Cache

    return Cache(layer_class_to_replicate=_growing_layer())


def _room_after(states: torch.Tensor, buffer: torch.Tensor | None) -> tuple[int, int] | None:
    """Where `states` sits in `buffer` along the positions ([rows, heads, positions, dim]) as
    (start, end), if it is such a view; None if it is not."""
    if (
        buffer is None
        or states.untyped_storage().data_ptr() != buffer.untyped_storage().data_ptr()
        or states.shape[:2] != buffer.shape[:2]
        or states.stride() != buffer.stride()
    ):
        return None
    start = (states.storage_offset() - buffer.storage_offset()) // buffer.stride(2)
    return start, start + states.shape[2]


@functools.cache
def _growing_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        """A dynamic cache layer that appends into room kept after its last position."""

        key_room: torch.Tensor | None = None
        value_room: torch.Tensor | None = None

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            keys, values = self.keys, self.values
            assert keys is not None and values is not None
            new = key_states.shape[-2]
            span = _room_after(keys, self.key_room) if keys.numel() else None
            key_room, value_room = self.key_room, self.value_room
            if span is None or key_room is None or span[1] + new > key_room.shape[2]:
                held = keys.shape[2] if keys.numel() else 0
                size = held + new + max(MIN_ROOM, (held + new) // 2)
                shape = (*key_states.shape[:2], size, key_states.shape[3])
                key_room, value_room = key_states.new_empty(shape), value_states.new_empty(shape)
                if held:
                    key_room[:, :, :held] = keys
                    value_room[:, :, :held] = values
                self.key_room, self.value_room = key_room, value_room
                span = 0, held
            assert value_room is not None
            start, end = span
            key_room[:, :, end : end + new] = key_states
            value_room[:, :, end : end + new] = value_states
            self.keys = key_room[:, :, start : end + new]
            self.values = value_room[:, :, start : end + new]
            return self.keys, self.values

    return GrowingLayer
