"""Writing many poems at once: the rows of several poems in one batched forward.

Evaluation writes hundreds of poems from a few fixed first lines. Poems that share a first line
(so their prompts have one length and need no padding) and whose models share one loaded base
are decoded together: each poem's rows (its emotions, and neutral when guided) sit side by side in
the batch, every poem keeps its own sampler, seed and stop rules, and a finished poem's rows leave
the batch. On a CPU a forward of dozens of rows costs a few times one row, so a sweep runs many
times faster than one stream at a time.

A poem written in a batch can differ from the same request streamed alone: batched matrix
products round differently in the last bits, and sampling can amplify that. Both draw from the
same distribution, which is what evaluation measures.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.core.blend import Blend, parse_blend
from studio.core.generation.decode import PoemDecode, writes_lines_again
from studio.core.generation.plan import PoemPlan
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats
from studio.core.registry import ModelInfo

if TYPE_CHECKING:
    from studio.core.generation.backends.base import RowBatch
    from studio.core.generation.poet import Poet

# Rows per batched forward. On a 2-core CPU, 64 poems of 2 rows wrote 63 tokens/s at 128 rows,
# 57 at 64 and 29 at 16, against 10-17 for one stream.
MAX_ROWS = 128
# What `auto` decodes batches on: torch's per-row adapters let a forward of dozens of rows cost a
# few times one row, while llama.cpp's rows on the Q4_1 base cost nearly a step each, so a batch
# goes no faster there than one stream (benchmarks/bench_batch.py).
BATCH_BACKEND = "torch"


@dataclass(frozen=True)
class PoemRequest:
    """One poem to write: an emotion or blend, or a given model entry sampled plainly."""

    emotion: str
    first_line: str
    params: SamplingParams
    info: ModelInfo | None = None  # e.g. the raw base, which has no neutral to guide against


def write_poems(
    poet: Poet,
    requests: list[PoemRequest],
    max_rows: int = MAX_ROWS,
    on_poem: Callable[[int, int], None] | None = None,
) -> list[tuple[str, GenerationStats]]:
    """Write every request; returns (poem text, stats) in request order.

    `on_poem(done, total)` is called as each poem finishes.
    """
    plans = [
        _plan(poet, request, params)
        for request, params in zip(requests, _batch_settings(requests), strict=True)
    ]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, plan in enumerate(plans):
        shared = poet.backend.batch_key(plan.rows)
        key = (tuple(plan.prompt), ("alone", index) if shared is None else shared)
        groups.setdefault(key, []).append(index)
    results: list[tuple[str, GenerationStats] | None] = [None] * len(plans)
    finished = 0

    def poem_done(index: int, text: str) -> None:
        nonlocal finished
        results[index] = (text, plans[index].stats)
        finished += 1
        if on_poem is not None:
            on_poem(finished, len(plans))

    alone: list[_Poem] = []  # poems that left a batch to write a line again
    for members in groups.values():
        batch: list[int] = []
        for index in members:
            rows = sum(len(plans[i].rows) for i in batch)
            if batch and rows + len(plans[index].rows) > max_rows:
                alone += _decode_batch(poet, _poems(batch, plans), poem_done)
                batch = []
            batch.append(index)
        if batch:
            alone += _decode_batch(poet, _poems(batch, plans), poem_done)
    for poem in alone:
        _decode_batch(poet, [poem], poem_done)
    return [result for result in results if result is not None]


@dataclass(eq=False)
class _Poem:
    """A poem of a batch: its request's index, its plan, its decoding and the text so far."""

    index: int
    plan: PoemPlan
    decode: PoemDecode
    text: str


def _poems(indices: list[int], plans: list[PoemPlan]) -> list[_Poem]:
    started = time.perf_counter()
    poems = []
    for index in indices:
        plan = plans[index]
        opening = plan.first_line + "\n" if plan.first_line else ""
        poems.append(_Poem(index, plan, PoemDecode(plan, started, rewinds=True), opening))
    return poems


def _batch_settings(requests: list[PoemRequest]) -> list[SamplingParams]:
    """Each request's settings, all moved from `auto` to `BATCH_BACKEND` when every one asks for
    `auto` and none may write a line again; else as asked. One backend drives every batch of a
    call, and a poem that writes a line again leaves its batch to end alone, where llama.cpp is
    the faster."""
    settings = [request.params for request in requests]
    if all(
        params.backend == "auto" and not writes_lines_again(params, not params.poem_form().is_free)
        for params in settings
    ):
        return [dataclasses.replace(params, backend=BATCH_BACKEND) for params in settings]
    return settings


def _plan(poet: Poet, request: PoemRequest, params: SamplingParams) -> PoemPlan:
    if request.info is not None:
        blend = Blend(((request.info.emotion, 1.0),))
        return poet.plan(blend, [request.info], request.first_line, params, guide=False)
    blend = parse_blend(request.emotion)
    return poet.plan(blend, poet.resolve(blend), request.first_line, params)


def _decode_batch(
    poet: Poet, batch: list[_Poem], poem_done: Callable[[int, str], None]
) -> list[_Poem]:
    """Decode poems that share a prompt, their rows side by side, until every one has ended.

    A poem that writes a line again (line_tries.py) needs its rows taken back alone: it leaves
    a batch of several and is returned, to be decoded on its own (its rows read it afresh)."""
    import torch

    first = batch[0].plan
    device = first.model.exempt.device
    active = list(batch)
    left: list[_Poem] = []
    with poet.backend.decoding(first.stats.cpu_threads):
        forward = poet.backend.rows([row for poem in batch for row in poem.plan.rows])
        # Every poem of a batch shares its prompt; one resumed alone feeds all it has written.
        ids = torch.tensor([batch[0].decode.context()], dtype=torch.long, device=device)
        fed = False  # whether `ids` is fed: then each row is fed its own poem's last token
        while True:
            ready = [poem for poem in active if poem.decode.has_room()]
            active = _narrow(forward, active, ready, poem_done)
            if not active:
                return left
            if fed:
                last = [poem.decode.state.generated[-1] for poem in active for _ in poem.plan.rows]
                ids = torch.tensor(last, dtype=torch.long, device=device)[:, None]
            fed = True
            logits = forward.forward(ids)
            offset = 0
            for poem in active:
                width = len(poem.plan.rows)
                token = poem.decode.choose(logits[offset : offset + width])
                poem.text += poem.decode.take(token)
                offset += width
            going = [poem for poem in active if not poem.decode.done]
            again = [poem for poem in going if poem.decode.rewound is not None]
            if again and len(active) == 1:
                rewound = again[0].decode.rewound
                assert rewound is not None
                forward.truncate(rewound)
                unread = again[0].decode.context()[rewound:]
                ids = torch.tensor([unread], dtype=torch.long, device=device)
                fed = False
                continue
            left += again
            active = _narrow(forward, active, [p for p in going if p not in again], poem_done)


def _narrow(
    forward: RowBatch,
    active: list[_Poem],
    keep: list[_Poem],
    poem_done: Callable[[int, str], None],
) -> list[_Poem]:
    """Report the poems that ended (those not in `keep` that are done) and drop the rows of every
    poem not in `keep` from the batch; returns `keep`."""
    if keep == active:
        return active
    for poem in active:
        if poem not in keep and poem.decode.done:
            poem.text += poem.decode.release()
            poem_done(poem.index, poem.text)
    if keep:
        starts, offset = {}, 0
        for poem in active:
            starts[id(poem)] = offset
            offset += len(poem.plan.rows)
        rows = [starts[id(poem)] + r for poem in keep for r in range(len(poem.plan.rows))]
        forward.keep(rows)
    return keep
