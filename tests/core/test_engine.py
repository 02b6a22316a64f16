"""The rebuilt engine: the same tokens as a plain reference loop, a fake backend through the Poet,
and the torch backend's fork and truncate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studio.core.generation import poet as poet_module
from studio.core.generation.decode import PoemDecode
from studio.core.generation.poet import Poet
from studio.core.generation.processors.mark_run import MAX_RUN, mark_flags, tail_run
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import STOP_MAX_LINES
from studio.core.generation.text import Detokenizer, clean_output
from tests.helpers.models import build_guided_adapters
from trainer.common.home import DataHome
from trainer.common.textformat import PoemTokens, prompt_ids

pytestmark = pytest.mark.numerics

FIRST_LINE = "The lamps are out along the quay"


def engine_tokens(poet: Poet, monkeypatch: pytest.MonkeyPatch, params: SamplingParams) -> list[int]:
    """The token ids the Poet chooses for a joy poem, read as it takes them."""
    chosen: list[int] = []

    class Recording(PoemDecode):
        def take(self, token: int) -> str:
            chosen.append(token)
            return super().take(token)

    monkeypatch.setattr(poet_module, "PoemDecode", Recording)
    text = "".join(poet.stream_poem("joy", FIRST_LINE, params))
    assert text.startswith(FIRST_LINE + "\n")
    return chosen


def reference_tokens(poet: Poet, params: SamplingParams) -> list[int]:
    """The same poem by a plain loop: the joy model alone, one row, every rule written out."""
    import torch

    model = poet.loader.load(poet.model_info("joy"))
    poet.loader.activate(model)
    exempt = model.exempt
    prompt = prompt_ids(model.tokenizer, FIRST_LINE, model.tokens)
    history = prompt[1:]
    generator = torch.Generator().manual_seed(params.seed or 0)
    # No run of marks: the line's text as the poem shows it, and which tokens are marks.
    marks, long_runs = (torch.tensor(flags) for flags in mark_flags(model.tokenizer, exempt))
    detok, line = Detokenizer(model.tokenizer), ""
    cache: Any = None
    ids = torch.tensor([prompt])
    chosen: list[int] = []
    with torch.inference_mode():
        for _ in range(params.max_new_tokens):
            out = model.module(
                input_ids=ids, use_cache=True, logits_to_keep=1, **{model.cache_arg: cache}
            )
            cache = getattr(out, model.cache_arg)
            scores = out.logits[0, -1].float().clone()
            seen = torch.zeros_like(exempt)
            seen[torch.tensor(history)] = True
            seen &= ~exempt
            penalty = params.repetition_penalty
            scores = torch.where(
                seen, torch.where(scores > 0, scores / penalty, scores * penalty), scores
            )
            n = params.no_repeat_ngram_size
            tail = tuple(history[len(history) - (n - 1) :])
            for start in range(len(history) - n + 1):
                gram = history[start : start + n]
                if tuple(gram[:-1]) == tail and not bool(exempt[gram[-1]]):
                    scores[gram[-1]] = float("-inf")
            scores[marks if tail_run(line) >= MAX_RUN else long_runs] = float("-inf")
            scores[model.tokens.eos] = float("-inf")  # min_lines is never reached here
            values, indices = torch.topk(scores / params.temperature, params.top_k)
            probs = torch.softmax(values, dim=-1)
            probs = probs.masked_fill(torch.cumsum(probs, -1) - probs >= params.top_p, 0.0)
            token = int(indices[torch.multinomial(probs, 1, generator=generator)])
            chosen.append(token)
            history.append(token)
            line = (line + clean_output(detok.push(token))).split("\n")[-1]
            ids = torch.tensor([[token]])
    return chosen


@pytest.mark.parametrize(("seed", "ngram"), [(3, 3), (11, 2)])
def test_the_engine_chooses_the_tokens_of_a_plain_reference_loop(
    poet: Poet, monkeypatch: pytest.MonkeyPatch, seed: int, ngram: int
) -> None:
    """Strength 0 is the emotion model alone, with the default rules, token for token."""
    import torch

    endless = {"min_lines": 10_000, "max_lines": 10_000, "max_stanzas": 10_000}
    # The reference loop is the sampler as it was before the stutter guard, which is off here.
    params = SamplingParams(
        strength=0.0,
        seed=seed,
        max_new_tokens=60,
        no_repeat_ngram_size=ngram,
        stutter_guard=False,
        **endless,
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        expected = reference_tokens(poet, params)
        assert engine_tokens(poet, monkeypatch, params) == expected
    finally:
        torch.set_num_threads(before)


# ----- a fake backend ----------------------------------------------------------------------------

CHARS = "\x00\x01\n abcdefghijklmnopqrstuvwxyz"  # bos, eos, then one token per character
BOS, EOS = 0, 1


class CharTokenizer:
    """One token per character of CHARS."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [CHARS.index(ch) for ch in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(CHARS[i] for i in ids if i not in (BOS, EOS))

    def get_vocab(self) -> dict[str, int]:
        return {ch: index for index, ch in enumerate(CHARS)}


class TableModel:
    """A model whose next-token scores depend only on the last token: `table[last]` holds the
    characters that may follow it ("^" stands for bos), all scored 10, or a score for each."""

    def __init__(self, info: Any, table: dict[str, Any]) -> None:
        import torch

        self.info = info
        self.tokenizer = CharTokenizer()
        self.context = 256
        self.exempt = torch.tensor([not ch.isalnum() for ch in CHARS])
        self.tokens = PoemTokens(BOS, EOS)
        self.table = table

    def scores(self, last: int) -> Any:
        import torch

        scores = torch.zeros(len(CHARS))
        following = self.table.get(CHARS[last] if last != BOS else "^", "")
        weights = dict.fromkeys(following, 10.0) if isinstance(following, str) else following
        for ch, score in weights.items():
            scores[CHARS.index(ch)] = score
        return scores


class TableRows:
    """A batch of table models: each row remembers its tokens."""

    def __init__(self, models: list[TableModel]) -> None:
        self.models = models
        self.ids: list[list[int]] = [[] for _ in models]

    @property
    def length(self) -> int:
        return len(self.ids[0])

    def forward(self, ids: Any) -> Any:
        import torch

        rows = ids.expand(len(self.models), -1) if ids.shape[0] == 1 else ids
        for row, new in zip(self.ids, rows.tolist(), strict=True):
            row.extend(new)
        return torch.stack([m.scores(r[-1]) for m, r in zip(self.models, self.ids, strict=True)])

    def keep(self, indices: list[int]) -> None:
        self.models = [self.models[i] for i in indices]
        self.ids = [list(self.ids[i]) for i in indices]

    def fork(self, row: int, copies: int) -> None:
        self.keep([*range(row), *[row] * copies, *range(row + 1, len(self.models))])

    def truncate(self, length: int) -> None:
        self.ids = [row[:length] for row in self.ids]


class TableBackend:
    """A backend of fixed next-token tables, one per emotion."""

    name = "table"
    per_row_adapters = True
    device = "cpu"

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self.tables = tables
        self.batches: list[TableRows] = []

    def load(self, info: Any, on_progress: Any = None) -> TableModel:
        return TableModel(info, self.tables[info.emotion])

    def rows(self, models: list[Any]) -> TableRows:
        self.batches.append(TableRows(models))
        return self.batches[-1]

    def batch_key(self, models: list[Any]) -> Any:
        return "tables"

    def dtype(self, model: Any) -> str:
        return "table"

    def decoding(self, threads: int | None) -> Any:
        import contextlib

        return contextlib.nullcontext()


ROSE = {"^": "r", "r": "o", "o": "s", "s": "e", "e": "\n", "\n": "r"}


def test_a_fake_backend_writes_through_the_poet(home: DataHome, tiny_base: Path, tmp_path: Path):
    build_guided_adapters(tiny_base, home.models)  # folders for the registry; never loaded
    backend = TableBackend({"joy": ROSE, "neutral": {}, "sadness": {}})
    poet = Poet(home, bundled_dir=tmp_path / "no-bundled", backend=backend)
    # The table spells one word on every line, which the stutter guard would refuse.
    params = SamplingParams(
        temperature=0.0, max_lines=3, no_repeat_ngram_size=0, strength=0.0, stutter_guard=False
    )
    assert "".join(poet.stream_poem("joy", "", params)) == "rose\nrose\nrose"
    stats = poet.last_stats
    assert stats is not None and stats.stop_reason == STOP_MAX_LINES
    assert stats.backend == "table" and stats.dtype == "table"
    assert [len(batch.models) for batch in backend.batches] == [1]


def test_guidance_through_a_fake_backend_runs_emotion_and_neutral_as_rows(
    home: DataHome, tiny_base: Path, tmp_path: Path
) -> None:
    build_guided_adapters(tiny_base, home.models)
    # After "r" joy likes "o" a little more than "i", neutral much more: guidance picks "i"
    # (both are inside neutral's nucleus: about 0.73 and 0.27).
    joy = {**ROSE, "r": {"o": 10.0, "i": 9.9}, "i": "s"}
    neutral = {**ROSE, "r": {"o": 10.0, "i": 9.0}, "i": "s"}
    backend = TableBackend({"joy": joy, "neutral": neutral, "sadness": {}})
    poet = Poet(home, bundled_dir=tmp_path / "no-bundled", backend=backend)
    params = SamplingParams(
        temperature=0.0,
        max_lines=1,
        no_repeat_ngram_size=0,
        repetition_penalty=1.0,
        strength=1.0,
        stutter_guard=False,
    )
    text = "".join(poet.stream_poem("joy", "", params))
    assert [m.info.emotion for m in backend.batches[0].models] == ["joy", "neutral"]
    assert text == "rise"
    params.strength = 0.0
    assert "".join(poet.stream_poem("joy", "", params)) == "rose", "unguided, o wins"


# ----- the torch backend's fork and truncate -----------------------------------------------------


def test_a_forked_row_continues_as_its_source_and_truncate_takes_every_row_back(
    poet: Poet,
) -> None:
    import torch

    poet.load("joy")
    joy = poet.loader.load(poet.model_info("joy"))
    neutral = poet.loader.load(poet.model_info("neutral"))
    prompt, step = torch.tensor([[0, 5, 9]]), torch.tensor([[12]])
    with poet.backend.decoding(1):
        rows = poet.backend.rows([joy, neutral])
        rows.forward(prompt)
        rows.fork(0, 3)  # three joy rows sharing the prompt's cache, then neutral
        assert rows.length == 3
        after = rows.forward(step)
        fresh = poet.backend.rows([joy, joy, joy, neutral])
        fresh.forward(prompt)
        # The prompt's cache was computed in a batch of 2 rows, not 4: fp32 rounding apart.
        torch.testing.assert_close(after, fresh.forward(step))
        assert torch.equal(after[0], after[1]) and torch.equal(after[0], after[2])
        rows.truncate(3)
        assert rows.length == 3
        assert torch.equal(rows.forward(step), after), "the same cache, the same scores"
