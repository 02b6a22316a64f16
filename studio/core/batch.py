"""Writing many poems at once: the rows of several poems in one batched forward.

Evaluation writes hundreds of poems from a few fixed first lines. Poems whose models share one
loaded base are decoded together: each poem's rows (its emotions, and neutral when guided) sit side
by side in the batch, every poem keeps its own sampler, seed and stop rules, and a finished poem's
rows leave the batch. A batch starts with the poems of one first line (one prompt: no padding).
Where the backend lets rows join a running batch (torch), waiting poems, of any first line, take
the places of those that ended, so a batch stays full instead of thinning out to its longest poem;
elsewhere each first line gets batches of its own. On a CPU a forward of dozens of rows costs a
few times one row, so a sweep runs many times faster than one stream at a time.

A poem written in a batch can differ from the same request streamed alone: batched matrix
products round differently in the last bits, and sampling can amplify that. Both draw from the
same distribution, which is what evaluation measures.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.core.blend import Blend, parse_blend
from studio.core.generation.backends.base import JoinableRows
from studio.core.generation.decode import PoemDecode, writes_lines_again
from studio.core.generation.plan import PoemPlan
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats
from studio.core.registry import ModelInfo

if TYPE_CHECKING:
    import torch

    from studio.core.generation.backends.base import RowBatch
    from studio.core.generation.poet import Poet

# Rows per batched forward. On a 2-core CPU, 64 poems of 2 rows wrote 63 tokens/s at 128 rows,
# 57 at 64 and 29 at 16, against 10-17 for one stream.
MAX_ROWS = 128
# Poems join a running batch once 1/JOIN_SHARE of its rows are free: each join costs a prefill of
# the new rows and a copy of the batch's KV cache, so joining in groups keeps that cost small while
# the batch stays at least three quarters full instead of thinning out to its longest poem.
JOIN_SHARE = 4
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
    # Poems whose rows can share a forward, those of one prompt together: a batch starts with
    # one prompt, and where rows can join a running batch the next prompt's poems join it.
    groups: dict[Hashable, dict[tuple[int, ...], list[int]]] = {}
    for index, plan in enumerate(plans):
        shared = poet.backend.batch_key(plan.rows)
        key = ("alone", index) if shared is None else shared
        groups.setdefault(key, {}).setdefault(tuple(plan.prompt), []).append(index)
    results: list[tuple[str, GenerationStats] | None] = [None] * len(plans)
    finished = 0

    def poem_done(index: int, text: str) -> None:
        nonlocal finished
        results[index] = (text, plans[index].stats)
        finished += 1
        if on_poem is not None:
            on_poem(finished, len(plans))

    alone: list[_Poem] = []  # poems that left a batch to write a line again
    for prompts in groups.values():
        waiting = _Waiting([index for members in prompts.values() for index in members], plans)
        while waiting.indices:
            alone += _decode_batch(
                poet, waiting.take(max_rows, start=True), poem_done, waiting, max_rows
            )
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


class _Waiting:
    """Poems whose rows can share a forward, not yet in a batch, those of one prompt together."""

    def __init__(self, indices: list[int], plans: list[PoemPlan]) -> None:
        self.indices = deque(indices)
        self.plans = plans

    def take(self, rows: int, start: bool = False) -> list[_Poem]:
        """The next poems, in order, while they share the first one's prompt and their rows fit
        in `rows`; a batch's `start` takes its first poem however many rows it has, so a poem
        wider than a batch is still written."""
        started = time.perf_counter()
        poems: list[_Poem] = []
        while self.indices:
            plan = self.plans[self.indices[0]]
            if len(plan.rows) > rows and (poems or not start):
                break
            if poems and plan.prompt != poems[0].plan.prompt:
                break
            rows -= len(plan.rows)
            opening = plan.first_line + "\n" if plan.first_line else ""
            decode = PoemDecode(plan, started, rewinds=True)
            poems.append(_Poem(self.indices.popleft(), plan, decode, opening))
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
    poet: Poet,
    batch: list[_Poem],
    poem_done: Callable[[int, str], None],
    waiting: _Waiting | None = None,
    max_rows: int = MAX_ROWS,
) -> list[_Poem]:
    """Decode poems that share a prompt, their rows side by side, until every one has ended;
    where the backend lets rows join a running batch, poems from `waiting` take the places of
    those that ended.

    A poem that writes a line again (line_tries.py) needs its rows taken back alone: it leaves
    a batch of several and is returned, to be decoded on its own (its rows read it afresh)."""
    import torch

    device = batch[0].plan.model.exempt.device
    with poet.backend.decoding(batch[0].plan.stats.cpu_threads):
        rows = _Rows(poet.backend.rows([row for poem in batch for row in poem.plan.rows]), batch)
        # Where waiting poems can join, ended poems' rows are dropped in groups.
        joins = waiting if isinstance(rows.forward, JoinableRows) else None
        # Every poem of a batch shares its prompt; one resumed alone feeds all it has written.
        ids = torch.tensor([batch[0].decode.context()], dtype=torch.long, device=device)
        fed = False  # whether `ids` is fed: then each row is fed its own poem's last token
        while True:
            for poem in rows.live():
                if not poem.decode.has_room():
                    rows.spend(poem, poem_done)
            rows.drop_spent(1 if joins is None else max(1, rows.width() // JOIN_SHARE))
            if not rows.live():
                return rows.left
            if joins is not None and fed:  # poems join a batch that has run
                _join(rows, joins, max_rows, poem_done)
            if fed:
                last = [
                    poem.decode.state.generated[-1] if poem.decode.state.generated else 0
                    for poem in rows.active
                    for _ in poem.plan.rows
                ]
                ids = torch.tensor(last, dtype=torch.long, device=device)[:, None]
            fed = True
            rows.choose(rows.forward.forward(ids), poem_done)
            again = rows.leaving
            if len(again) == 1 and again == rows.live():  # the one poem left writes a line again
                rows.leaving = []
                rows.drop_spent(1)
                rewound = again[0].decode.rewound
                assert rewound is not None
                rows.forward.truncate(rewound)
                unread = again[0].decode.context()[rewound:]
                ids = torch.tensor([unread], dtype=torch.long, device=device)
                fed = False
                continue
            for poem in again:
                rows.spend(poem, None)
            rows.leaving = []


class _Rows:
    """A running batch: its poems in row order, those that ended or left (their rows are
    dropped in groups where a drop copies the KV cache), and the poems to write alone."""

    def __init__(self, forward: RowBatch, poems: list[_Poem]) -> None:
        self.forward = forward
        self.active = list(poems)
        self.spent: set[int] = set()  # ids of poems in `active` whose rows wait to be dropped
        self.leaving: list[_Poem] = []  # chosen a line again at the last step
        self.left: list[_Poem] = []

    def live(self) -> list[_Poem]:
        """The poems still writing."""
        return [poem for poem in self.active if id(poem) not in self.spent]

    def width(self) -> int:
        """Rows in the batch."""
        return sum(len(poem.plan.rows) for poem in self.active)

    def spend(self, poem: _Poem, poem_done: Callable[[int, str], None] | None) -> None:
        """`poem` has ended (reported through `poem_done`) or leaves (None: written alone later)."""
        self.spent.add(id(poem))
        if poem_done is None:
            self.left.append(poem)
        else:
            poem.text += poem.decode.release()
            poem_done(poem.index, poem.text)

    def drop_spent(self, at_least: int) -> None:
        """Drop the spent poems' rows once they are `at_least` rows."""
        spent = [poem for poem in self.active if id(poem) in self.spent]
        if not spent or sum(len(poem.plan.rows) for poem in spent) < at_least:
            return
        keep: list[int] = []
        offset = 0
        for poem in self.active:
            width = len(poem.plan.rows)
            if id(poem) not in self.spent:
                keep += range(offset, offset + width)
            offset += width
        if keep:
            self.forward.keep(keep)
        self.active = self.live()
        self.spent.clear()

    def choose(
        self,
        logits: torch.Tensor,
        poem_done: Callable[[int, str], None],
        poems: list[_Poem] | None = None,
    ) -> None:
        """Each live poem's next token from its rows of `logits` (every poem's rows, in order, or
        those of `poems` alone)."""
        offset = 0
        for poem in poems if poems is not None else self.active:
            width = len(poem.plan.rows)
            if id(poem) not in self.spent:
                token = poem.decode.choose(logits[offset : offset + width])
                poem.text += poem.decode.take(token)
                if poem.decode.done:
                    self.spend(poem, poem_done)
                elif poem.decode.rewound is not None:
                    self.leaving.append(poem)
            offset += width


def _join(
    rows: _Rows, waiting: _Waiting, max_rows: int, poem_done: Callable[[int, str], None]
) -> None:
    """Poems from `waiting` join the batch once a share of its rows are free (joining one poem
    at a time would pay a prefill and a copy of the KV cache at nearly every step), and choose
    their first tokens."""
    import torch

    free = max_rows - rows.width()
    if not waiting.indices or free < max(1, max_rows // JOIN_SHARE):
        return
    joining = waiting.take(free)
    if not joining:
        return
    forward = rows.forward
    assert isinstance(forward, JoinableRows)
    device = joining[0].plan.model.exempt.device
    ids = torch.tensor([joining[0].decode.context()], dtype=torch.long, device=device)
    logits = forward.join([row for poem in joining for row in poem.plan.rows], ids)
    rows.active += joining
    rows.choose(logits, poem_done, joining)
