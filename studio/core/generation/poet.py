"""The Poet: finds emotion models, loads them through a backend, and streams poems from them.

The loop is written out here instead of calling `model.generate`: one forward per token on a KV
cache, the processors on the step's scores (processors/), incremental detokenisation, and a
cancel Event checked before every token, so a stream stops within one token.

Stop rules (a "line" is a non-empty line; the first line is line one):
- eos, once the poem has `min_lines` lines (before that eos is masked);
- `max_lines` lines, `max_new_tokens` tokens, or the model's context being full;
- a blank line that would open stanza `max_stanzas + 1`.
"""

from __future__ import annotations

import contextlib
import gc
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from models import BUNDLED_DIR
from studio.core.blend import Blend, parse_blend
from studio.core.cputhreads import CpuShare
from studio.core.generation.backends.base import Backend, Model, ProgressFn
from studio.core.generation.decode import PoemDecode
from studio.core.generation.machine import cpu_name
from studio.core.generation.plan import PoemPlan, fitted_to_form
from studio.core.generation.settings import SEED_LIMIT, SamplingParams
from studio.core.generation.stats import STOP_CANCELLED, STOP_ERROR, GenerationStats
from studio.core.generation.text import clean_first_line
from studio.core.registry import ModelInfo, ModelScan, resolve_model, scan_models
from trainer.common.emotions import NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

if TYPE_CHECKING:
    from studio.core.generation.backends.torch_peft import TorchBackend
    from studio.core.loader import ModelLoader


def fresh_seed() -> int:
    """A random generation seed below SEED_LIMIT."""
    return secrets.randbelow(SEED_LIMIT)


class Poet:
    """The generation core: finds emotion models, loads them, and streams poems from them."""

    def __init__(
        self,
        home: DataHome,
        device: str | None = None,
        bundled_dir: Path = BUNDLED_DIR,
        precision: str | None = None,
        backend: Backend | None = None,
    ) -> None:
        """`backend` runs the models; without one, the `backend` setting of each poem picks it
        (torch on `device` in `precision`, or llama.cpp; backends/choice.py)."""
        self.home = home
        self.bundled_dir = Path(bundled_dir)
        self._fixed_backend = backend
        self._device = device
        self._precision = precision or "auto"
        self._torch: TorchBackend | None = None
        self._backends: dict[str, tuple[Backend, str | None]] = {}
        self._backend_choice = "auto"
        self.last_stats: GenerationStats | None = None
        self._scan: ModelScan | None = None
        # CPU decoding threads; None picks them per stream from how busy the cores are.
        self.decode_threads: int | None = None
        self._cpu_share = CpuShare()
        self._settled: set[object] = set()  # what _settle has frozen already

    @property
    def backend(self) -> Backend:
        """The backend that runs the next poem: the one given, else the `backend` setting's."""
        if self._fixed_backend is not None:
            return self._fixed_backend
        return self._chosen(self._backend_choice)[0]

    def _torch_backend(self) -> TorchBackend:
        from studio.core.generation.backends.torch_peft import TorchBackend
        from studio.core.loader import ModelLoader

        if self._torch is None:
            self._torch = TorchBackend(
                ModelLoader(self.home, self._device, precision=self._precision)
            )
        return self._torch

    def _chosen(self, choice: str) -> tuple[Backend, str | None]:
        """The backend `choice` names and its notice, made once per choice."""
        if choice not in self._backends:
            from studio.core.generation.backends.choice import make_backend

            backend, notice = make_backend(choice, self.home, self._torch_backend())
            for other, _ in self._backends.values():
                if type(other) is type(backend):
                    backend = other  # `auto` and `llama` share one: its bases load once
            self._backends[choice] = (backend, notice)
        return self._backends[choice]

    @property
    def loader(self) -> ModelLoader:
        """The torch backend's model loader (evaluation reads the modules it loaded)."""
        from studio.core.generation.backends.torch_peft import TorchBackend

        backend = self._fixed_backend
        if backend is not None and not isinstance(backend, TorchBackend):
            raise PoetstudioError(f"the {backend.name} backend has no torch model loader")
        return (backend or self._torch_backend()).loader

    @property
    def device(self) -> str:
        """The device poems are generated on (importing torch on first use)."""
        return self.backend.device

    @property
    def scan(self) -> ModelScan:
        """The last scan of the model folders (scanning on first use)."""
        if self._scan is None:
            self.refresh()
        assert self._scan is not None
        return self._scan

    def refresh(self) -> dict[str, ModelInfo]:
        """Rescan the bundled and user model folders; returns the usable model per emotion."""
        self._scan = scan_models(self.home, self.bundled_dir)
        return self._scan.models

    def model_info(self, emotion: str) -> ModelInfo:
        """The model that `emotion` (or a blend's main emotion) resolves to.

        Raises a PoetstudioError saying how to get a model when any emotion of a blend has none.
        """
        blend = parse_blend(emotion)
        infos = self.resolve(blend)
        return infos[blend.emotions.index(blend.primary)]

    def resolve(self, blend: Blend) -> list[ModelInfo]:
        """The model of each emotion in `blend`, in order (a one-line error for a missing one)."""
        scan = self.scan
        return [resolve_model(e, self.home, self.bundled_dir, scan=scan) for e in blend.emotions]

    def load(self, emotion: str, on_progress: ProgressFn | None = None) -> ModelInfo:
        """Load the models that `emotion` (or a blend) writes with now, the neutral one included.

        Generation loads on demand too; this reports progress. Returns the main emotion's model.
        """
        blend = parse_blend(emotion)
        for info in self.resolve(blend):
            self.backend.load(info, on_progress)
        neutral = self.scan.models.get(NEUTRAL)
        if blend.primary != NEUTRAL and neutral is not None:
            with contextlib.suppress(PoetstudioError):  # guidance reports it when it streams
                self.backend.load(neutral, on_progress)
        self._settle(("loaded", emotion, self.backend.name), collect=True)
        return self.model_info(emotion)

    def prepare(self, emotion: str, params: SamplingParams | None = None) -> None:
        """Load what `emotion` (or a blend) writes with and build what its poems' processors
        need under `params` (a form's rhyme and syllable tables), so that the first poem does
        not wait for them: the studio calls it while the writer is still typing."""
        params = (params or SamplingParams()).validate()
        made = self._chosen(params.backend) if self._fixed_backend is None else None
        blend = parse_blend(emotion)
        plan = self.plan(blend, self.resolve(blend), "", params)
        if made is not None:
            self._backends[params.backend] = made  # its notice is the first poem's to give
        PoemDecode(plan, time.perf_counter(), rewinds=True).warm()
        # Collected first: the poem just built is garbage, and frozen it would never go.
        self._settle(_decoding_key(plan), collect=True)

    def _settle(self, key: object, collect: bool = False) -> None:
        """Leave every object alive now out of later garbage collections, once per `key` (what
        was loaded, or what a poem's decoding built).

        The libraries, tokenizers and a vocabulary's tables are some 300,000 long-lived objects;
        each full collection walked them all (about 100 to 300 ms here), and the allocations of
        decoding set one off every hundred-odd tokens: a stall in the stream. Frozen, they are
        skipped. `collect` first clears the garbage there is (loading is slow anyway); cycles
        frozen while alive are never collected, which is why this runs once per new key, not per
        poem.
        """
        if key in self._settled:
            return
        if collect:
            gc.collect()
        gc.freeze()
        self._settled.add(key)

    def _threads_for(self, model: Model) -> int | None:
        """CPU threads for the next stream: the override, else the cores others leave free."""
        if model.exempt.device.type != "cpu":
            return None
        if self.decode_threads is not None:
            return self.decode_threads
        import torch

        return self._cpu_share.decode_threads(torch.get_num_threads())

    def stream_poem(
        self,
        emotion: str,
        first_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield a poem as text chunks: the first line and a newline first (if any), then the rest.

        `emotion` is one emotion or a blend (`joy+sadness`, `joy=0.7+sadness=0.3`); with
        `params.strength` > 0 it is guided against the neutral model. `self.last_stats`
        describes this stream from its start and is final once it ends.
        """
        blend = parse_blend(emotion)
        yield from self._stream(blend, self.resolve(blend), first_line, params, cancel)

    def stream_model(
        self,
        info: ModelInfo,
        first_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Plain sampling (no guidance) of a given model entry, such as the raw base."""
        blend = Blend(((info.emotion, 1.0),))
        yield from self._stream(blend, [info], first_line, params, cancel, guide=False)

    def _stream(
        self,
        blend: Blend,
        infos: list[ModelInfo],
        first_line: str,
        params: SamplingParams | None,
        cancel: threading.Event | None,
        guide: bool = True,
    ) -> Iterator[str]:
        started = time.perf_counter()
        plan = self.plan(blend, infos, first_line, params, guide)
        self.last_stats = plan.stats
        stats = plan.stats
        if plan.first_line:
            yield plan.first_line + "\n"
        try:
            yield from self._decode(plan, cancel, started)
        except GeneratorExit:
            if stats.stop_reason is None:
                stats.stop_reason = STOP_CANCELLED
            raise
        except Exception:
            stats.stop_reason = STOP_ERROR
            raise

    def plan(
        self,
        blend: Blend,
        infos: list[ModelInfo],
        first_line: str,
        params: SamplingParams | None = None,
        guide: bool = True,
    ) -> PoemPlan:
        """Load what one poem needs and fix how it is decoded: rows, strength, prompt, stats."""
        params = (params or SamplingParams()).validate()
        form = params.poem_form()
        params = fitted_to_form(params, form)
        stats = GenerationStats()
        self._backend_choice = params.backend
        if self._fixed_backend is None:
            backend, notice = self._chosen(params.backend)
            if notice:
                stats.notices.append(notice)
                self._backends[params.backend] = (backend, None)  # said once per session
        experts = [self.backend.load(info) for info in infos]
        model = experts[0]
        for other, info in zip(experts[1:], infos[1:], strict=True):
            if not _same_vocabulary(model, other):
                raise PoetstudioError(
                    f"cannot blend {infos[0].emotion} and {info.emotion}: "
                    "their models use different tokenizers"
                )
        rows = list(experts)
        strength = params.strength if guide and blend.primary != NEUTRAL else 0.0
        if strength > 0:
            neutral, problem = self._neutral_for(model)
            if neutral is None:
                stats.notices.append(f"{problem}; writing without guidance (strength 0)")
                strength = 0.0
            else:
                rows.append(neutral)
        stats.emotion = blend.spec
        stats.strength = strength
        if blend.is_single:
            stats.model = _describe(model.info)
        else:
            stats.model = "; ".join(f"{m.info.emotion}: {_describe(m.info)}" for m in experts)
        if strength > 0:
            stats.model += f"; guided against neutral: {_describe(rows[-1].info)}"
        stats.device = self.device
        stats.backend, stats.dtype = self._runtime_of(model)
        stats.processor = cpu_name() if model.exempt.device.type == "cpu" else self.device
        stats.seed = params.seed if params.seed is not None else fresh_seed()

        from trainer.common.textformat import prompt_ids

        context = min(loaded.context for loaded in rows)
        shown = clean_first_line(first_line)
        prompt = prompt_ids(model.tokenizer, shown, model.tokens)
        # Leave room to write at least a few lines after the first line.
        room = max(8, min(params.max_new_tokens, context // 2))
        limit = context - room
        if len(prompt) > limit:
            newline = model.tokenizer.encode("\n", add_special_tokens=False)
            prompt = prompt[: limit - len(newline)] + newline
            # transformers types decode without overloads; one sequence decodes to a str.
            shown = model.tokenizer.decode(prompt[1:], skip_special_tokens=True)  # type: ignore[assignment]
            shown = shown.strip().rstrip("\ufffd")  # a cut may split a character's bytes
            stats.notices.append(
                "the first line was longer than the model's context; "
                f"truncated to {len(prompt) - 1} tokens"
            )
        stats.prompt_tokens = len(prompt)
        stats.cpu_threads = self._threads_for(model)
        return PoemPlan(
            model,
            rows,
            blend.weights,
            strength,
            context,
            prompt,
            shown,
            params,
            stats,
            None if form.is_free else form,
        )

    def decoder(self, emotion: str) -> str:
        """The backend that decodes `emotion`'s model (a blend's main one), e.g. `llama`, or
        `torch` for a model llama.cpp cannot run (loading the model if it is not loaded yet)."""
        return self._runtime_of(self.backend.load(self.model_info(emotion)))[0]

    def _runtime_of(self, model: Model) -> tuple[str, str]:
        """The backend that decodes `model` and what its weights are held in."""
        runs = getattr(self.backend, "runs", None)  # a backend that hands some models on
        name = runs(model) if runs is not None else self.backend.name
        return name, self.backend.dtype(model)

    def _neutral_for(self, model: Model) -> tuple[Model | None, str]:
        """The neutral model to guide `model` against, or None and why there is none."""
        info = self.scan.models.get(NEUTRAL)
        if info is None:
            hint = "train one with `poetstudio train --emotion neutral`"
            problem = self.scan.problems.get(NEUTRAL)
            return None, f"no neutral model to guide against ({problem or hint})"
        try:
            neutral = self.backend.load(info)
        except PoetstudioError as exc:
            return None, f"the neutral model cannot be loaded ({exc})"
        if not _same_vocabulary(model, neutral):
            return None, "the neutral model uses another tokenizer than this emotion's"
        return neutral, ""

    def _decode(
        self, plan: PoemPlan, cancel: threading.Event | None, started: float
    ) -> Iterator[str]:
        """The token loop: one forward per token on the KV cache, until a stop rule fires."""
        import torch

        poem = PoemDecode(plan, started, rewinds=True)
        self._settle(_decoding_key(plan))
        device = plan.model.exempt.device
        with self.backend.decoding(plan.stats.cpu_threads):
            rows = self.backend.rows(plan.rows)
            ids = torch.tensor([plan.prompt], dtype=torch.long, device=device)
            step = torch.empty((1, 1), dtype=torch.long, device=device)
            while True:
                if cancel is not None and cancel.is_set():
                    poem.finish(STOP_CANCELLED)
                    return
                if not poem.has_room():
                    break
                token = poem.choose(rows.forward(ids))
                text = poem.take(token)
                if text:
                    yield text
                if poem.done:
                    break
                if poem.rewound is not None:  # a forced line is written again
                    rows.truncate(poem.rewound)
                    fed = poem.context()[poem.rewound :]
                    ids = torch.tensor([fed], dtype=torch.long, device=device)
                    continue
                step[0, 0] = token
                ids = step
        tail = poem.release()
        if tail:
            yield tail


def _decoding_key(plan: PoemPlan) -> tuple[object, ...]:
    """What a poem's decoding built, for `Poet._settle`: its models and its form."""
    form = plan.form.name if plan.form is not None else ""
    return ("decoding", *(row.info.path for row in plan.rows), form)


def _describe(info: ModelInfo) -> str:
    """Where a model came from, for stats and saved poems."""
    text = f"{info.source} {info.method} {info.path}"
    return text + (f" (base {info.base_spec})" if info.method == "lora" else "")


def _same_vocabulary(a: Model, b: Model) -> bool:
    """Whether two models score the same tokens (one shared tokenizer, or equal vocabularies)."""
    if a.tokenizer is b.tokenizer:
        return True
    if a.exempt.shape != b.exempt.shape or a.tokens != b.tokens:
        return False
    return bool(a.tokenizer.get_vocab() == b.tokenizer.get_vocab())
