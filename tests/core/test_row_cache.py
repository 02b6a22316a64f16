"""The torch backend's KV cache and rows that join a running batch.

A position is written into room kept after the last one (no copy of the whole cache at each
token), and a row that joins a batch later, at its own first position, scores as it would alone.
"""

from __future__ import annotations

import pytest

from studio.core.generation.backends.rowcache import row_cache
from studio.core.generation.backends.torch_peft import RowForward
from studio.core.generation.poet import Poet

pytestmark = pytest.mark.numerics


def test_the_cache_scores_as_transformers_own_and_appends_into_its_room(poet: Poet) -> None:
    import torch

    model = poet.loader.load(poet.model_info("joy"))
    poet.loader.activate(model)
    ids = torch.tensor([[0, 5, 9, 12, 40], [3, 4, 5, 6, 7]])
    with torch.inference_mode():
        reference = model.module(input_ids=ids).logits
        cache = row_cache()
        first = model.module(input_ids=ids[:, :2], use_cache=True, **{model.cache_arg: cache})
        room = cache.layers[0].key_room
        steps = [first.logits[:, -1]]
        for position in range(2, 5):
            out = model.module(
                input_ids=ids[:, position : position + 1],
                use_cache=True,
                **{model.cache_arg: cache},
            )
            steps.append(out.logits[:, -1])
        assert cache.layers[0].key_room is room  # written into, never copied
        torch.testing.assert_close(torch.stack(steps, 1), reference[:, 1:])
        # Taken back two positions, the cache writes the new ones over the old.
        cache.crop(-2)
        out = model.module(input_ids=ids[:, 3:5], use_cache=True, **{model.cache_arg: cache})
        assert cache.layers[0].key_room is room
        torch.testing.assert_close(out.logits[:, -1], reference[:, -1])
        # Rows selected (a copy) move to a new room at the next position.
        cache.batch_select_indices(torch.tensor([1]))
        cache.crop(-1)
        out = model.module(input_ids=ids[1:, 4:5], use_cache=True, **{model.cache_arg: cache})
        assert cache.layers[0].key_room is not room
        torch.testing.assert_close(out.logits[0, -1], reference[1, -1])


def test_rows_that_join_a_running_batch_score_as_alone(poet: Poet) -> None:
    """Guided rows of another poem join at their own first position, three tokens behind; when
    the first rows leave, the positions no row holds are dropped."""
    import torch

    joy, sadness, neutral = (
        poet.loader.load(poet.model_info(name)) for name in ("joy", "sadness", "neutral")
    )
    first = torch.tensor([[0, 5, 9]])
    joining = torch.tensor([[0, 7]])
    with torch.inference_mode():
        batch = RowForward(poet.loader, [joy, neutral])
        ahead = RowForward(poet.loader, [joy, neutral])  # the first rows, never joined
        for ids in (first, torch.tensor([[11]]), torch.tensor([[12]]), torch.tensor([[13]])):
            batch.forward(ids)
            ahead.forward(ids)
        alone = RowForward(poet.loader, [sadness, neutral])
        expected = alone.forward(joining)
        torch.testing.assert_close(batch.join([sadness, neutral], joining), expected)
        assert batch.pads == [0, 0, 4, 4] and batch.length == 6
        for token in (20, 21, 22):
            scores = batch.forward(torch.tensor([[30], [31], [token], [token + 1]]))
            old_rows = ahead.forward(torch.tensor([[30], [31]]))
            new_rows = alone.forward(torch.tensor([[token], [token + 1]]))
            torch.testing.assert_close(
                scores, torch.cat([old_rows, new_rows]), rtol=1e-4, atol=1e-4
            )
        batch.keep([2, 3])
        assert batch.pads == [0, 0] and batch.length == alone.length
        scores = batch.forward(torch.tensor([[40], [41]]))
        expected = alone.forward(torch.tensor([[40], [41]]))
        torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-4)
