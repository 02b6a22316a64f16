"""Loading emotion models for generation: one base per base model, LoRA adapters hot-swapped on it.

LoRA models share their raw base (the manifest's `base.spec`), so the base is loaded once and each
emotion's adapter is added beside the others; switching emotion only changes the active adapter.
Full fine-tuned models are whole models of their own and live in a small LRU cache.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core import fastlora
from studio.core.generation.backends.base import ProgressFn
from studio.core.registry import MANIFEST, ModelInfo
from trainer.common.errors import PoetstudioError, first_line
from trainer.common.home import DataHome
from trainer.common.textformat import PoemTokens

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

# A plain verse line that any tokenizer fit for English verse encodes to a few known tokens.
_PROBE_LINE = "The lamps are out along the quay,"


@dataclass
class LoadedModel:
    """A model ready for decoding: the module to call, its tokenizer, and per-tokenizer tables."""

    info: ModelInfo
    module: PreTrainedModel  # the model to call; LoRA layers are injected into it in place
    tokenizer: PreTrainedTokenizerBase
    context: int  # the most positions the model can attend to
    exempt: torch.Tensor  # bool tensor over the vocabulary: tokens no repetition rule may punish
    tokens: PoemTokens  # the ids that open and close a poem, as this model was trained
    adapter: str | None = None  # the PEFT adapter name to activate, for LoRA models
    base: _Base | None = field(default=None, repr=False)  # where the adapter lives
    cache_arg: str = "cache"  # the forward's KV-cache keyword: "cache", or older "past_key_values"


@dataclass
class _Base:
    """A loaded base model, its tokenizer, and the adapters added to it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    context: int
    exempt: torch.Tensor
    cache_arg: str
    peft: Any = None  # the PeftModel wrapper, once a first adapter is added
    layers: list[Any] = field(default_factory=list)  # peft's LoRA layers, for the lean forward
    adapters: dict[tuple[str, int], str] = field(default_factory=dict)  # (path, mtime) -> name
    active: str | tuple[str, ...] | None = None  # an adapter, or one per batch row


def _quiet_transformers() -> None:
    """Silence the weight-loading progress bars; the studio reports progress itself."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _context_length(config: PretrainedConfig) -> int:
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def _exempt_tokens(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> torch.Tensor:
    """Tokens with no letter or digit (newlines, punctuation): verse needs them again and again."""
    import torch

    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    mask = torch.ones(vocab_size, dtype=torch.bool)
    for i, text in enumerate(texts[:vocab_size]):
        mask[i] = not any(ch.isalnum() for ch in text)
    return mask


def _column_major_weights(model: torch.nn.Module) -> None:
    """Store each linear weight transposed in memory (same values and shape, other strides).

    Decoding one token multiplies a vector by every weight matrix. On CPUs the BLAS streams an
    [in, out]-contiguous matrix markedly faster than the [out, in] layout nn.Linear keeps
    (measured here: about a quarter less time per token), and `F.linear` accepts either layout.
    """
    import torch

    seen: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if not isinstance(module, torch.nn.Linear) or weight is None or id(weight) in seen:
                continue
            seen.add(id(weight))  # a tied lm_head shares the embedding's weight: move it once
            weight.data = weight.data.t().contiguous().t()


def _cache_argument(model: torch.nn.Module) -> str:
    """transformers 5 renamed the forward's `past_key_values` to `cache`; support both."""
    import inspect

    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase, rows: int, what: str) -> None:
    """Refuse a tokenizer that cannot carry this model's verse, before it writes empty poems.

    A folder without its tokenizer files still loads: transformers then builds a tokenizer of
    one token, which encodes every line to nothing. So the vocabulary must cover most of the
    model's embedding rows (models pad them a little, never by half), and a plain verse line must
    encode to known ids inside those rows.
    """
    fix = (
        "its tokenizer files (tokenizer.json, or vocab.json and merges.txt) are missing or do not "
        "match the weights; copy them from its base model or retrain it"
    )
    size = len(tokenizer)
    if size * 2 < rows:
        raise PoetstudioError(
            f"cannot load {what}: its tokenizer has {size} tokens for the model's {rows} "
            f"embedding rows; {fix}"
        )
    try:
        ids = tokenizer.encode(_PROBE_LINE, add_special_tokens=False)
    except Exception as exc:  # a damaged tokenizer fails in its own ways; report any
        raise PoetstudioError(
            f"cannot load {what}: its tokenizer fails on a verse line ({first_line(exc)}); {fix}"
        ) from None
    unknown = tokenizer.unk_token_id
    if not ids or all(token == unknown for token in ids) or max(ids) >= rows:
        found = "nothing" if not ids else "unknown tokens or ids past the embeddings"
        raise PoetstudioError(
            f"cannot load {what}: its tokenizer turns the verse line {_PROBE_LINE!r} into "
            f"{found}; {fix}"
        )


def _poem_tokens(info: ModelInfo, base: _Base) -> PoemTokens:
    """The poem ids `info`'s manifest records (else the tokenizer's), checked against the vocab."""
    tokens = PoemTokens.recorded(info.manifest.raw, base.tokenizer)
    vocab = base.exempt.shape[0]
    if max(tokens.bos, tokens.eos) >= vocab:
        raise PoetstudioError(
            f"{info.emotion} model in {info.path}: its manifest's poem_tokens {tokens.as_dict()} "
            f"lie outside the {vocab}-token vocabulary; retrain it or restore its {MANIFEST}"
        )
    return tokens


def _check_adapter_file(info: ModelInfo) -> None:
    """Read the adapter weights' header before peft alters the base, so a bad file fails cleanly."""
    from safetensors import safe_open

    weights = info.path / "adapter_model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as handle:
            if not list(handle.keys()):
                raise ValueError("it holds no tensors")
    except Exception as exc:  # safetensors raises its own error type for a damaged header
        raise PoetstudioError(
            f"cannot load the {info.emotion} adapter: {weights} is damaged ({first_line(exc)})"
        ) from None


def _adapter_key(path: Path) -> tuple[str, int]:
    """Identify a model by folder and manifest mtime, so a retrained model is picked up."""
    try:
        mtime = (path / MANIFEST).stat().st_mtime_ns
    except OSError:
        mtime = 0
    return (str(path.resolve()), mtime)


class ModelLoader:
    """Loads models for `device`, keeps bases and full models in a small LRU, hot-swaps adapters."""

    def __init__(
        self,
        home: DataHome,
        device: str | None = None,
        cache_size: int = 2,
        precision: str = "auto",
    ) -> None:
        from trainer.common.precision import check_precision

        self.home = home
        self.precision = check_precision(precision)
        self._device_override = device
        self._device: str | None = None
        self.cache_size = max(1, cache_size)
        # Keys are ("base", resolved spec) or ("full", path, mtime); values _Base.
        self._cache: OrderedDict[tuple[Any, ...], _Base] = OrderedDict()
        self._counter = 0
        # Guards loading and the active adapter: generation holds it around each forward step.
        self.lock = threading.RLock()

    @property
    def device(self) -> str:
        """The device models run on (picked on first use: cuda, mps, cpu, or the override)."""
        if self._device is None:
            from trainer.common.device import pick_device

            self._device = pick_device(self._device_override)
        return self._device

    def load(self, info: ModelInfo, on_progress: ProgressFn | None = None) -> LoadedModel:
        """Return `info`'s model ready to decode, loading only what is not loaded yet."""
        report = on_progress or (lambda fraction, message: None)
        with self.lock:
            if info.method == "lora":
                loaded = self._load_lora(info, report)
            else:
                loaded = self._load_full(info, report)
            report(1.0, f"{info.emotion} ready on {self.device}")
            return loaded

    def activate(self, loaded: LoadedModel) -> None:
        """Make `loaded`'s adapter the active one on its base; cheap when it already is."""
        if loaded.adapter is None:
            return
        base = loaded.base
        if base is None or base.peft is None:
            return
        if base.active != loaded.adapter:
            # peft's own switch walks the whole model (a fifth of a second); only the layers
            # that the lean forward does not serve read peft's active adapter.
            if fastlora.install(base.layers, loaded.adapter) < len(base.layers):
                base.peft.set_adapter(loaded.adapter)
            base.active = loaded.adapter

    def activate_rows(self, models: list[LoadedModel]) -> bool:
        """Give batch row r the adapter of `models[r]`, all LoRA models on one loaded base.

        Returns False when they cannot share one forward (not all LoRA, different bases, or a
        layer the per-row forward does not handle); the caller then runs them one by one.
        """
        base = models[0].base
        names = [loaded.adapter for loaded in models if loaded.adapter is not None]
        if base is None or base.peft is None or len(names) < len(models):
            return False
        if any(loaded.base is not base for loaded in models):
            return False
        key = tuple(names)
        if base.active == key:
            return True
        if not fastlora.install_rows(base.layers, names):
            return False
        base.active = key
        return True

    def loaded_bases(self) -> int:
        """How many bases and full models are in memory now."""
        return len(self._cache)

    def _remember(self, key: tuple[Any, ...], base: _Base) -> None:
        self._cache[key] = base
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _load_weights(self, source: str, report: ProgressFn, what: str) -> _Base:
        """Load a tokenizer and causal LM from a local folder or Hub id onto the device."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        report(0.1, f"loading tokenizer for {what}")
        dtype = self._dtype_for(source, report, what)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
            report(0.2, f"loading {what} weights")
            model = self._shared_weights(source, dtype) if self.device == "cpu" else None
            if model is None:
                model = AutoModelForCausalLM.from_pretrained(
                    source, dtype=dtype, trust_remote_code=False, use_safetensors=True
                )
        except Exception as exc:  # a broken or foreign folder fails in many ways; report any
            raise PoetstudioError(f"cannot load {what} from {source}: {first_line(exc)}") from None
        vocab = model.get_output_embeddings().weight.shape[0]
        _check_tokenizer(tokenizer, vocab, f"{what} from {source}")
        report(0.7, f"moving {what} to {self.device}")
        # transformers' decorated `to` hides its signature from type checkers.
        model.to(self.device)  # type: ignore[arg-type]
        model.eval()
        if self.device == "cpu":
            _column_major_weights(model)  # a no-op for shared weights, stored that way
        exempt = _exempt_tokens(tokenizer, vocab).to(self.device)
        return _Base(
            model=model,
            tokenizer=tokenizer,
            context=_context_length(model.config),
            exempt=exempt,
            cache_arg=_cache_argument(model),
        )

    def _dtype_for(self, source: str, report: ProgressFn, what: str) -> torch.dtype:
        """The dtype to load `source` in; on a CPU `auto` is whichever of fp32 and bf16 decodes
        faster here, timed once (studio/core/generation/decode_precision.py)."""
        from trainer.common.precision import inference_dtype

        precision = self.precision
        if precision == "auto" and self.device == "cpu":
            from transformers import AutoConfig

            from studio.core.generation.decode_precision import measured_precision

            try:
                config = AutoConfig.from_pretrained(source, trust_remote_code=False)
            except Exception as exc:  # a broken or foreign folder fails in many ways
                raise PoetstudioError(
                    f"cannot load {what} from {source}: {first_line(exc)}"
                ) from None
            note = "timing fp32 and bf16 decoding on this CPU (once)"
            precision = measured_precision(self.home, config, "torch", lambda: report(0.15, note))
        return inference_dtype(self.device, precision)

    def _shared_weights(self, source: str, dtype: torch.dtype) -> PreTrainedModel | None:
        """The CPU model of folder `source` on weights memory-mapped from the data home's
        cache, written there from an ordinary load the first time; shared by every process
        that loads it (each browser tab's studio). None where it cannot be: not a local folder
        of safetensors weights, or a data home that cannot be written."""
        from transformers import AutoModelForCausalLM

        from studio.core import sharedweights

        folder = Path(source)
        path = sharedweights.mapped_path(self.home, folder, dtype) if folder.is_dir() else None
        if path is None:
            return None
        if not path.is_file():
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, trust_remote_code=False, use_safetensors=True
            )
            _column_major_weights(model)
            try:
                sharedweights.write_mapped(model, path)
            except Exception:  # a read-only or full home (safetensors' own error type on I/O)
                return model  # this process keeps its own copy
            del model
        try:
            return sharedweights.load_mapped(folder, path, dtype)
        except Exception:  # a damaged cache file: drop it; the ordinary load rewrites it later
            path.unlink(missing_ok=True)
            return None

    def _load_lora(self, info: ModelInfo, report: ProgressFn) -> LoadedModel:
        from trainer.common.bases import resolve_base

        source = resolve_base(info.base_spec, self.home)
        key = ("base", source)
        base = self._cache.get(key)
        if base is None:
            base = self._load_weights(source, report, f"base {info.base_spec}")
            self._remember(key, base)
        else:
            self._cache.move_to_end(key)
        adapter_key = _adapter_key(info.path)
        name = base.adapters.get(adapter_key)
        if name is None:
            report(0.8, f"loading the {info.emotion} adapter")
            name = self._add_adapter(base, info, adapter_key)
        model = LoadedModel(
            info=info,
            module=base.peft.get_base_model(),
            tokenizer=base.tokenizer,
            context=base.context,
            exempt=base.exempt,
            tokens=_poem_tokens(info, base),
            adapter=name,
            base=base,
            cache_arg=base.cache_arg,
        )
        self.activate(model)
        return model

    def _add_adapter(self, base: _Base, info: ModelInfo, adapter_key: tuple[str, int]) -> str:
        from peft import PeftModel

        _check_adapter_file(info)
        self._counter += 1
        name = f"{info.emotion}_{self._counter}"
        # A retrained model replaces its older adapter, which would otherwise linger in memory.
        stale = [k for k in base.adapters if k[0] == adapter_key[0]]
        try:
            with warnings.catch_warnings():
                # peft calls a transformers method that transformers deprecated; not ours to fix.
                warnings.simplefilter("ignore", FutureWarning)
                if base.peft is None:
                    base.peft = PeftModel.from_pretrained(
                        base.model, str(info.path), adapter_name=name, is_trainable=False
                    )
                else:
                    base.peft.load_adapter(str(info.path), adapter_name=name, is_trainable=False)
        except Exception as exc:  # any failure inside peft means this adapter is unusable
            self._discard_failed_adapter(base, name)
            raise PoetstudioError(
                f"cannot load the {info.emotion} adapter from {info.path}: {first_line(exc)}"
            ) from None
        base.peft.to(self.device)
        base.peft.eval()
        base.layers = fastlora.lora_layers(base.peft)
        for layer in base.layers:
            # peft keeps adapters in fp32 over a bf16/fp16 base; match the base for the fast path.
            dtype = layer.base_layer.weight.dtype
            layer.lora_A[name].to(dtype=dtype)
            layer.lora_B[name].to(dtype=dtype)
        base.active = None
        for old in stale:
            base.peft.delete_adapter(base.adapters.pop(old))
        base.adapters[adapter_key] = name
        return name

    def _discard_failed_adapter(self, base: _Base, name: str) -> None:
        """Undo a half-added adapter: delete it, or drop a base that a first adapter altered."""
        if base.peft is not None and name in base.peft.peft_config:
            base.peft.delete_adapter(name)
            base.active = None
        elif base.peft is None:
            # peft injects its layers into the base before reading the weights; reload it clean.
            for key, cached in list(self._cache.items()):
                if cached is base:
                    del self._cache[key]

    def _load_full(self, info: ModelInfo, report: ProgressFn) -> LoadedModel:
        key = ("full", *_adapter_key(info.path))
        base = self._cache.get(key)
        if base is None:
            base = self._load_weights(str(info.path), report, f"{info.emotion} model")
            self._remember(key, base)
        else:
            self._cache.move_to_end(key)
        return LoadedModel(
            info=info,
            module=base.model,
            tokenizer=base.tokenizer,
            context=base.context,
            exempt=base.exempt,
            tokens=_poem_tokens(info, base),
            base=base,
            cache_arg=base.cache_arg,
        )
