"""The llama backend: llama.cpp (through llama-cpp-python) runs LoRA models on their base's gguf.

The base's weights are its gguf (the offline preset's own Q4_1 file: the very weights torch
de-quantises), each emotion's adapter a GGUF LoRA converted once (gguf_lora.py). llama.cpp gives
the logits of every step; choosing tokens (processors, sampling, streaming, cancel) stays the
engine's.

llama.cpp sets LoRA adapters per context, not per sequence, so a batch holds one context per
adapter among its rows; rows of one adapter are sequences of its context and run as one decode,
and the contexts step in lock-step (guidance: emotion and neutral, two decodes a step). Contexts
are pooled per base and reused across batches, their KV cache cleared.

Models this backend cannot run (full fine-tunes, bases without a gguf, adapters it cannot
convert) load through the torch backend instead; a batch that mixes them runs on torch whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import os
import threading
import weakref
from collections import Counter
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from studio.core.generation.backends.base import Model, ProgressFn
from studio.core.generation.backends.gguf_base import base_gguf, cache_dir, has_gguf
from studio.core.generation.backends.gguf_lora import ARCHITECTURES, BaseShape, converted_adapter
from studio.core.registry import ModelInfo
from trainer.common.errors import PoetstudioError
from trainer.common.textformat import PoemTokens

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from studio.core.generation.backends.torch_peft import TorchBackend

NAME = "llama"
INSTALL_HINT = "install it with `pip install 'poetstudio[fast]'` (or `make setup`)"
# KV cells of one context, shared by its rows (sequences); a row can attend to this many.
CONTEXT_CELLS = 1024
# A context made for many rows (batched writing, eval) gets this many cells a row, which holds a
# poem at the default settings; forked rows share their prefix's cells.
ROW_CELLS = 320
ROWS_PER_CONTEXT = 128  # sequences one context holds (studio/core/batch.py's MAX_ROWS)
# Sequences a pooled context (a poem's, or co-writing's up to 8 candidates and their forks)
# holds. llama.cpp keeps a vocabulary of logits per sequence it may hold: 25 MB at 128, 3 MB at
# 16, which brought a studio process from 643 to 598 MB (bench_generate.py --rss).
POOLED_ROWS = 16
# Tokens per decode call; a longer prompt goes in pieces. llama.cpp sizes a context's work
# buffers by it, and its logits buffer by the outputs (one per row): memory, not speed, here.
BATCH_TOKENS = 128
POOLED_CONTEXTS = 3  # idle contexts kept per base for the next batch


def installed() -> bool:
    """Whether llama-cpp-python is importable (without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


_LIBRARY: Any = None


def _ignore_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log: dropped. Its failures reach the engine as return codes, which become
    one-line errors; printed, its chatter (warnings included, which llama-cpp-python's own
    callback mistakes for errors) would land in the studio's terminal."""


# Kept by the module: llama.cpp holds only the C pointer to it.
_silent_log: Any = None


def library() -> Any:
    """The llama_cpp module, imported and initialised once; a one-line error when absent."""
    global _LIBRARY, _silent_log
    if _LIBRARY is None:
        if not installed():
            raise PoetstudioError(f"the llama backend needs llama-cpp-python; {INSTALL_HINT}")
        module = importlib.import_module("llama_cpp")
        _silent_log = module.llama_log_callback(_ignore_log)
        module.llama_log_set(_silent_log, ctypes.c_void_p(0))
        module.llama_backend_init()
        _LIBRARY = module
    return _LIBRARY


def load_params() -> Any:
    """llama.cpp's model parameters for a base: its defaults without the extra buffer types.

    On a Xeon that advertises AMX they lay a Q4_1 base's weights out for its tiles, and on the
    2-core Xeon machines here the first matrix product then died of an illegal instruction
    (tilezero: SIGILL), taking the studio down; llama.cpp's other x86 layouts have no Q4_1
    kind, so elsewhere nothing changes."""
    params = library().llama_model_default_params()
    params.use_extra_bufts = False
    return params


@dataclass(eq=False)
class Adapter:
    """A GGUF LoRA adapter llama.cpp has loaded: its address, and whether it is still loaded (a
    retrained model's new adapter replaces it, and it is freed once no context holds it)."""

    handle: int
    live: bool = True


@dataclass(eq=False)
class LlamaModel:
    """A LoRA model as the llama backend runs it: its base's gguf and its converted adapter."""

    info: ModelInfo
    base: GgufBase = field(repr=False)
    adapter: Adapter
    tokens: PoemTokens

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The base folder's tokenizer (the engine tokenizes; llama.cpp only takes ids)."""
        return self.base.tokenizer

    @property
    def context(self) -> int:
        """The positions one row can hold."""
        return self.base.context

    @property
    def exempt(self) -> torch.Tensor:
        """Tokens no repetition rule may punish."""
        return self.base.exempt


class _Context:
    """One llama.cpp context: a KV cache of CONTEXT_CELLS cells shared by its sequences."""

    def __init__(self, base: GgufBase, cells: int = CONTEXT_CELLS, seqs: int = POOLED_ROWS) -> None:
        lib = library()
        params = lib.llama_context_default_params()
        params.n_ctx = cells
        self.cells = cells
        self.seqs = seqs
        params.n_batch = BATCH_TOKENS
        params.n_ubatch = BATCH_TOKENS
        params.n_seq_max = seqs
        params.n_outputs_max = seqs
        params.kv_unified = True  # the sequences share the cells, however many each holds
        params.no_perf = True
        self.handle = lib.llama_init_from_model(base.model, params)
        if not self.handle:
            raise PoetstudioError("llama.cpp could not make a decoding context (out of memory?)")
        self.memory = lib.llama_get_memory(self.handle)
        self.batch = lib.llama_batch_init(BATCH_TOKENS, 0, 1)
        self.vocab = base.vocab
        self.adapter: Adapter | None = None
        self.threads = 0

    def use(self, adapter: Adapter | None, threads: int) -> None:
        """Make `adapter` the context's LoRA (None: no LoRA) and decode with `threads` threads."""
        lib = library()
        if adapter is not self.adapter:
            if adapter is None:
                code = lib.llama_set_adapters_lora(self.handle, None, 0, None)
            else:
                handles = (ctypes.c_void_p * 1)(adapter.handle)
                adapters = ctypes.cast(handles, ctypes.POINTER(lib.llama_adapter_lora_p_ctypes))
                scales = (ctypes.c_float * 1)(1.0)
                code = lib.llama_set_adapters_lora(self.handle, adapters, 1, scales)
            if code != 0:
                raise PoetstudioError("llama.cpp refused the adapter for this base")
            self.adapter = adapter
        if threads != self.threads:
            lib.llama_set_n_threads(self.handle, threads, threads)
            self.threads = threads

    def clear(self) -> None:
        """Forget every sequence (the cells are reused, not wiped)."""
        library().llama_memory_clear(self.memory, False)

    def decode(self, rows: list[tuple[int, list[int]]], start: int) -> list[Any]:
        """Feed each (sequence, ids) its ids at positions from `start`; the last position's
        logits of each, as float32 arrays, in order."""
        import numpy as np

        lib = library()
        count = len(rows[0][1])
        logits: list[Any] = []
        # Pieces of at most BATCH_TOKENS tokens; only the last position's logits are kept.
        step = max(1, BATCH_TOKENS // len(rows))
        for offset in range(0, count, step):
            piece = min(step, count - offset)
            last = offset + piece == count
            batch = self.batch
            n = 0
            for seq, ids in rows:
                for i in range(offset, offset + piece):
                    batch.token[n] = ids[i]
                    batch.pos[n] = start + i
                    batch.n_seq_id[n] = 1
                    batch.seq_id[n][0] = seq
                    batch.logits[n] = last and i == count - 1
                    n += 1
            batch.n_tokens = n
            code = lib.llama_decode(self.handle, batch)
            if code != 0:
                raise PoetstudioError(
                    f"llama.cpp could not decode (code {code}): the rows outgrew the "
                    f"{self.cells} positions of the fast backend's cache; try --backend torch"
                )
        for index in range(len(rows)):
            pointer = lib.llama_get_logits_ith(self.handle, (index + 1) * piece - 1)
            logits.append(np.ctypeslib.as_array(pointer, shape=(self.vocab,)))
        return logits

    def close(self) -> None:
        """Free the context."""
        lib = library()
        lib.llama_batch_free(self.batch)
        lib.llama_free(self.handle)


class GgufBase:
    """A base's gguf loaded once, its tokenizer and tables, its adapters and idle contexts."""

    def __init__(self, spec: str, path: Path, folder: str) -> None:
        from transformers import AutoTokenizer

        from studio.core.loader import _exempt_tokens

        lib = library()
        self.model = lib.llama_model_load_from_file(str(path).encode(), load_params())
        if not self.model:
            raise PoetstudioError(f"llama.cpp cannot load {path}")
        self.spec = spec
        self.path = path
        self.vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model))
        self.context = min(CONTEXT_CELLS, lib.llama_model_n_ctx_train(self.model))
        self.shape = BaseShape(
            arch=_meta(self.model, "general.architecture"),
            heads=lib.llama_model_n_head(self.model),
            kv_heads=lib.llama_model_n_head_kv(self.model),
        )
        self.dtype = _file_type(lib.llama_model_ftype(self.model))
        self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        self.exempt = _exempt_tokens(self.tokenizer, self.vocab)
        self.adapters: dict[tuple[str, int], Adapter] = {}
        self.retired: list[Adapter] = []  # replaced, freed once no context holds them
        self.idle: list[_Context] = []
        self.busy: set[_Context] = set()  # contexts some batch holds
        self.lock = threading.Lock()

    def acquire(self, rows: int, adapter: Adapter, threads: int) -> _Context:
        """A context for `rows` rows with `adapter` set: an idle one of the usual size, or a new
        one (a one-line error if the adapter was replaced meanwhile: load the model again)."""
        cells = max(CONTEXT_CELLS, rows * ROW_CELLS)
        with self.lock:  # the adapter cannot be freed between this check and its use
            if not adapter.live:
                raise PoetstudioError("the model was retrained while loading; write again")
            if cells == CONTEXT_CELLS:
                context = self.idle.pop() if self.idle else _Context(self, cells)
            else:
                context = _Context(self, cells, ROWS_PER_CONTEXT)
            try:
                context.use(adapter, threads)
            except PoetstudioError:
                context.close()
                raise
            self.busy.add(context)
        return context

    def release(self, contexts: list[_Context]) -> None:
        """Take contexts back (cleared); close those past the pool's size, and large ones."""
        with self.lock:
            for context in contexts:
                self.busy.discard(context)
                context.clear()
                if context.cells == CONTEXT_CELLS and len(self.idle) < POOLED_CONTEXTS:
                    self.idle.append(context)
                else:
                    context.close()
            self._free_retired()

    def retire(self, adapter: Adapter) -> None:
        """Let go of a replaced adapter: freed now if no batch holds it, else once none does."""
        with self.lock:
            adapter.live = False
            self.retired.append(adapter)
            self._free_retired()

    def _free_retired(self) -> None:
        """Free the retired adapters no busy context holds (idle ones let go of theirs)."""
        held = {id(context.adapter) for context in self.busy}
        lib = library()
        for adapter in [a for a in self.retired if id(a) not in held]:
            for context in self.idle:
                if context.adapter is adapter:
                    context.use(None, context.threads)
            pointer = ctypes.cast(ctypes.c_void_p(adapter.handle), lib.llama_adapter_lora_p_ctypes)
            lib.llama_adapter_lora_free(pointer)
            self.retired.remove(adapter)


def _meta(model: Any, key: str) -> str:
    lib = library()
    buffer = ctypes.create_string_buffer(256)
    size = lib.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer))
    return buffer.value.decode() if size >= 0 else ""


def _file_type(value: int) -> str:
    """llama.cpp's file type as a short dtype name: MOSTLY_Q4_1 -> q4_1, ALL_F32 -> f32."""
    import gguf

    try:
        name = gguf.LlamaFileType(value).name
    except ValueError:
        return f"gguf type {value}"
    return name.removeprefix("MOSTLY_").removeprefix("ALL_").lower()


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(size: int) -> ThreadPoolExecutor:
    """A process-wide pool of `size` threads that run contexts' decodes side by side."""
    if size not in _POOLS:
        _POOLS[size] = ThreadPoolExecutor(size, thread_name_prefix="llama-rows")
    return _POOLS[size]


@dataclass
class _Row:
    """A batch row: the context of its adapter and its sequence there."""

    context: _Context
    seq: int


class LlamaRows:
    """Rows decoding together: one context per adapter, a sequence per row, in lock-step."""

    def __init__(self, models: list[LlamaModel], threads: int) -> None:
        self.models = list(models)
        self.base = models[0].base
        self.threads = threads
        self.length = 0
        self.contexts: dict[Adapter, _Context] = {}
        self.free: dict[int, list[int]] = {}  # per context (by id): sequences not in use
        self.rows: list[_Row] = []
        counts = Counter(model.adapter for model in self.models)
        for model in self.models:
            context = self.contexts.get(model.adapter)
            if context is None:
                context = self.base.acquire(counts[model.adapter], model.adapter, threads)
                self.contexts[model.adapter] = context
                self.free[id(context)] = list(range(context.seqs - 1, -1, -1))
            self.rows.append(_Row(context, self._take_seq(context)))
        # Hand the contexts back once this batch is gone (the stream ended or was dropped).
        weakref.finalize(self, self.base.release, list(self.contexts.values()))

    def _take_seq(self, context: _Context) -> int:
        free = self.free[id(context)]
        if not free:
            raise PoetstudioError(
                f"the llama backend runs at most {context.seqs} rows of one model at once here"
            )
        return free.pop()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed `ids` ([1, tokens] for every row alike, or [rows, tokens]); return the last
        position's scores, [rows, vocab].

        Several contexts decode at once, each on its share of the threads (llama.cpp releases
        the GIL): guidance's two decodes then take about the time of one on half the cores,
        instead of two on all of them.
        """
        import numpy as np
        import torch

        table = ids.tolist()
        out = np.empty((len(self.rows), self.base.vocab), dtype=np.float32)
        groups = []
        for context in self.contexts.values():
            members = [i for i, row in enumerate(self.rows) if row.context is context]
            if members:
                feed = [(self.rows[i].seq, table[0 if len(table) == 1 else i]) for i in members]
                groups.append((context, members, feed))
        # Every context at once on its share of the threads, at least one: with fewer threads
        # than contexts (a blend's three on two cores) the system interleaves one-thread
        # decodes, which never wait on each other. One after another on all the threads was
        # slower, by 10x on a busy machine, where llama.cpp's threads spin at every step
        # waiting for a peer the system has set aside.
        share = max(1, self.threads // len(groups)) if len(groups) > 1 else 0

        def run(group: tuple[_Context, list[int], list[tuple[int, list[int]]]]) -> None:
            context, members, feed = group
            context.use(context.adapter, share or self.threads)
            for index, logits in zip(members, context.decode(feed, self.length), strict=True):
                out[index] = logits

        if share:
            list(_pool(len(groups)).map(run, groups))
        else:
            for group in groups:
                run(group)
        self.length += len(table[0])
        return torch.from_numpy(out)

    def keep(self, indices: list[int]) -> None:
        """Keep the rows at `indices`, in that order; an index given twice copies its row."""
        lib = library()
        taken: set[int] = set()
        rows: list[_Row] = []
        for index in indices:
            row = self.rows[index]
            if index in taken:
                seq = self._take_seq(row.context)
                lib.llama_memory_seq_cp(row.context.memory, row.seq, seq, -1, -1)
                row = _Row(row.context, seq)
            taken.add(index)
            rows.append(row)
        for index, row in enumerate(self.rows):
            if index not in taken:
                lib.llama_memory_seq_rm(row.context.memory, row.seq, -1, -1)
                self.free[id(row.context)].append(row.seq)
        self.rows = rows
        self.models = [self.models[i] for i in indices]

    def fork(self, row: int, copies: int) -> None:
        """Replace `row` by `copies` rows in its place, each holding its prefix."""
        count = len(self.rows)
        self.keep([*range(row), *[row] * copies, *range(row + 1, count)])

    def truncate(self, length: int) -> None:
        """Take every row back to its first `length` positions."""
        if length >= self.length:
            return
        lib = library()
        for row in self.rows:
            lib.llama_memory_seq_rm(row.context.memory, row.seq, length, -1)
        self.length = length


class LlamaBackend:
    """llama.cpp on the CPU for LoRA models whose base has a gguf; torch for the others."""

    name = NAME
    per_row_adapters = False

    def __init__(self, home: Any, torch_backend: TorchBackend) -> None:
        self.home = home
        self.torch = torch_backend
        self._bases: dict[str, GgufBase] = {}
        self._lock = threading.RLock()
        self._threads = os.cpu_count() or 1

    @property
    def device(self) -> str:
        """llama.cpp decodes on the CPU."""
        return "cpu"

    def serves(self, info: ModelInfo) -> bool:
        """Whether llama.cpp runs `info` here (a LoRA on a base with a gguf)."""
        return info.method == "lora" and info.base_spec is not None and has_gguf(info.base_spec)

    def load(self, info: ModelInfo, on_progress: ProgressFn | None = None) -> Model:
        """`info`'s model ready to decode: on llama.cpp where it can run there, else on torch
        (an adapter llama.cpp cannot take, too: torch says what is wrong if anything is)."""
        if self.serves(info):
            with contextlib.suppress(PoetstudioError):
                return self._load(info, on_progress or (lambda fraction, message: None))
        return self.torch.load(info, on_progress)

    def _load(self, info: ModelInfo, report: ProgressFn) -> LlamaModel:
        with self._lock:
            base = self._base(info, report)
            adapter = self._adapter(base, info, report)
            tokens = PoemTokens.recorded(info.manifest.raw, base.tokenizer)
            if max(tokens.bos, tokens.eos) >= base.vocab:
                raise PoetstudioError(
                    f"{info.emotion} model in {info.path}: its manifest's poem_tokens lie "
                    f"outside the {base.vocab}-token vocabulary"
                )
            report(1.0, f"{info.emotion} ready (llama.cpp, {base.dtype})")
            return LlamaModel(info=info, base=base, adapter=adapter, tokens=tokens)

    def _base(self, info: ModelInfo, report: ProgressFn) -> GgufBase:
        from trainer.common.bases import resolve_base

        spec = info.base_spec
        base = self._bases.get(spec)
        if base is not None:
            return base
        report(0.1, f"loading base {spec} (gguf)")
        path = base_gguf(spec, self.home)
        folder = resolve_base(spec, self.home)  # its tokenizer
        try:
            base = GgufBase(spec, path, folder)
        except PoetstudioError:
            if Path(folder) / path.name == path:
                raise
            path.unlink(missing_ok=True)  # a damaged cached copy: copy it out of the wheel again
            base = GgufBase(spec, base_gguf(spec, self.home), folder)
        if base.shape.arch not in ARCHITECTURES:
            raise PoetstudioError(f"the llama backend does not run {base.shape.arch} bases")
        self._bases[spec] = base
        return base

    def _adapter(self, base: GgufBase, info: ModelInfo, report: ProgressFn) -> Adapter:
        from studio.core.loader import _adapter_key

        key = _adapter_key(info.path)
        adapter = base.adapters.get(key)
        if adapter is not None:
            return adapter
        report(0.8, f"loading the {info.emotion} adapter (gguf)")
        cache = cache_dir(self.home) / "lora"
        path = converted_adapter(info.path, base.shape, cache, info.emotion)
        lib = library()
        adapter = lib.llama_adapter_lora_init(base.model, str(path).encode())
        if not adapter:
            path.unlink(missing_ok=True)  # damaged past what the header shows: convert again
            path = converted_adapter(info.path, base.shape, cache, info.emotion)
            adapter = lib.llama_adapter_lora_init(base.model, str(path).encode())
        if not adapter:
            raise PoetstudioError(f"llama.cpp cannot load the {info.emotion} adapter ({path})")
        loaded = Adapter(ctypes.cast(adapter, ctypes.c_void_p).value or 0)
        for stale in [k for k in base.adapters if k[0] == key[0]]:
            base.retire(base.adapters.pop(stale))  # a retrained model replaces its older adapter
        base.adapters[key] = loaded
        return loaded

    def rows(self, models: list[Model]) -> Any:
        """A new batch with one row per model: on llama.cpp when every model runs there, else
        every row on torch."""
        # A model whose adapter a retrained one replaced since it loaded runs the new one.
        models = [
            self.load(m.info) if isinstance(m, LlamaModel) and not m.adapter.live else m
            for m in models
        ]
        if all(isinstance(model, LlamaModel) for model in models):
            return LlamaRows(cast("list[LlamaModel]", models), self._threads)
        loaded = [self.torch.load(model.info) for model in models]
        return self.torch.rows(cast("list[Model]", loaded))

    def batch_key(self, models: list[Model]) -> Hashable | None:
        """Rows on one gguf base share a batch; torch's rule for the others."""
        if all(isinstance(model, LlamaModel) for model in models):
            return ("gguf", id(cast(LlamaModel, models[0]).base))
        if any(isinstance(model, LlamaModel) for model in models):
            return None
        return self.torch.batch_key(models)

    def dtype(self, model: Model) -> str:
        """What `model`'s base weights are held in, e.g. q4_1 (torch's answer for its models)."""
        if isinstance(model, LlamaModel):
            return model.base.dtype
        return self.torch.dtype(model)

    def runs(self, model: Model) -> str:
        """The backend that decodes `model`: llama, or torch for a model llama.cpp cannot run."""
        return NAME if isinstance(model, LlamaModel) else self.torch.name

    @contextlib.contextmanager
    def decoding(self, threads: int | None) -> Iterator[None]:
        """Decode with `threads` CPU threads (None: every core), without autograd; the engine's
        per-token work in torch (processors, the draw) on one thread, which on vectors of a
        vocabulary is the fastest and leaves the cores to llama.cpp."""
        import torch

        from studio.core.generation.backends.torch_peft import torch_threads

        before = self._threads
        self._threads = threads or os.cpu_count() or 1
        try:
            with torch.inference_mode(), torch_threads(1):
                yield
        finally:
            self._threads = before
