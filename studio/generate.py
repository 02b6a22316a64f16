"""Streaming poems from an emotion model: sampling settings, stop rules, and the decoding loop.

The loop is written out here instead of calling `model.generate`: one forward per token on a KV
cache, vectorised logits processing on preallocated tensors, incremental detokenisation, and a
cancel Event checked before every token, so a stream stops within one token.

Stop rules, checked as the text grows (a "line" is a non-empty line; the seed line is line one):
- eos, once the poem has `min_lines` lines (before that eos is suppressed);
- `max_lines` lines, `max_new_tokens` tokens, or the model's context being full;
- a blank line that would open stanza `max_stanzas + 1`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models import BUNDLED_DIR
from studio.cputhreads import CpuShare
from studio.loader import LoadedModel, ModelLoader, ProgressFn
from studio.registry import ModelInfo, ModelScan, resolve_model, scan_models
from trainer.errors import PoetstudioError
from trainer.home import DataHome

# Stop reasons reported in GenerationStats.stop_reason.
STOP_EOS = "eos"
STOP_MAX_LINES = "max_lines"
STOP_MAX_TOKENS = "max_tokens"
STOP_MAX_STANZAS = "max_stanzas"
STOP_CONTEXT = "context"
STOP_CANCELLED = "cancelled"
STOP_ERROR = "error"


@dataclass
class SamplingParams:
    """How to sample a poem. The defaults keep verse from looping ("long, long, long").

    The repetition penalty and the n-gram ban never apply to tokens without a letter or digit
    (newlines, punctuation), which verse legitimately repeats on every line.
    """

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.15
    no_repeat_ngram_size: int = 3
    min_lines: int = 4
    max_lines: int = 14
    max_new_tokens: int = 200
    max_stanzas: int = 3
    seed: int | None = None

    def validate(self) -> SamplingParams:
        """Return self if every setting is in range, else raise a one-line PoetstudioError."""
        checks = [
            (self.temperature >= 0, "temperature must be >= 0 (0 means greedy)"),
            (self.top_k >= 0, "top-k must be >= 0 (0 turns it off)"),
            (0 < self.top_p <= 1, "top-p must be in (0, 1]"),
            (self.repetition_penalty > 0, "repetition penalty must be > 0 (1 turns it off)"),
            (self.no_repeat_ngram_size >= 0, "no-repeat n-gram size must be >= 0 (0 turns it off)"),
            (self.min_lines >= 0, "min lines must be >= 0"),
            (self.max_lines >= 1, "max lines must be >= 1"),
            (self.max_new_tokens >= 1, "max new tokens must be >= 1"),
            (self.max_stanzas >= 1, "max stanzas must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise PoetstudioError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict, for manifests of saved poems."""
        return asdict(self)


@dataclass
class GenerationStats:
    """What one stream did; updated as it runs and final once the stream ends."""

    ttft_s: float | None = None  # from the call (a load on demand included) to the first token
    tokens_per_s: float | None = None  # decoding rate after the first token
    tokens: int = 0  # tokens generated (the prompt not counted)
    stop_reason: str | None = None
    seed: int | None = None  # the sampling seed used; pass it back to reproduce the poem
    prompt_tokens: int = 0
    emotion: str | None = None
    model: str | None = None  # where the model came from, for saved poems
    device: str | None = None
    cpu_threads: int | None = None  # torch threads decoding used on a CPU
    notices: list[str] = field(default_factory=list)  # e.g. the seed line was truncated


def clean_seed(text: str) -> str:
    """A seed line as one printable line: whitespace runs become one space, controls go."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf"):
            out.append(ch)
    return " ".join("".join(out).split())


def clean_output(text: str) -> str:
    """Model text without control characters other than newline (they could drive a terminal)."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch == "\n" else " " if ch == "\t" else ch
        for ch in text
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf")
    )


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
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


class _LineCounter:
    """Counts lines and stanzas of the text streamed so far, and finds where a limit is crossed."""

    def __init__(self, max_lines: int, max_stanzas: int) -> None:
        self.max_lines = max_lines
        self.max_stanzas = max_stanzas
        self.done_lines = 0  # non-empty lines closed by a newline
        self.stanzas = 1
        self.current = False  # the open line has visible text
        self.newlines = 0  # newlines in a row since the last visible character

    @property
    def lines(self) -> int:
        """Non-empty lines so far, the open one included."""
        return self.done_lines + (1 if self.current else 0)

    def feed(self, text: str) -> tuple[int, str | None]:
        """Take `text`; return how much of it to keep, and the stop reason if a limit was hit."""
        for index, ch in enumerate(text):
            if ch == "\n":
                self.newlines += 1
                if self.current:
                    self.done_lines += 1
                    self.current = False
                    if self.done_lines >= self.max_lines:
                        return index, STOP_MAX_LINES
                if self.newlines == 2 and self.done_lines > 0:
                    if self.stanzas >= self.max_stanzas:
                        return index, STOP_MAX_STANZAS
                    self.stanzas += 1
            elif not ch.isspace():
                if not self.current:
                    self.current = True
                self.newlines = 0
        return len(text), None


class _Detokenizer:
    """Turns a growing list of token ids into new text, holding back incomplete UTF-8 sequences."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, token_id: int) -> str:
        """Add a token and return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix : self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before) :]
        return ""


class _Sampler:
    """Turns logits into the next token: penalties, n-gram ban, temperature, top-k, top-p."""

    def __init__(self, params: SamplingParams, model: LoadedModel, prompt: list[int], seed: int):
        import torch

        self.params = params
        self.exempt = model.exempt
        vocab = model.exempt.shape[0]
        device = model.exempt.device
        self.seen = torch.zeros(vocab, dtype=torch.bool, device=device)
        self.history: list[int] = list(prompt[1:])  # the seed's tokens count, bos does not
        if self.history:
            self.seen[torch.tensor(self.history, device=device)] = True
        self.seen &= ~self.exempt
        self.ngrams: dict[tuple[int, ...], set[int]] = {}
        n = params.no_repeat_ngram_size
        for end in range(n, len(self.history) + 1) if n else ():
            self._remember(self.history[end - n : end])
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def _remember(self, gram: list[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def push(self, token_id: int) -> None:
        """Record a generated token for the repetition rules."""
        self.history.append(token_id)
        if not bool(self.exempt[token_id]):
            self.seen[token_id] = True
        n = self.params.no_repeat_ngram_size
        if n and len(self.history) >= n:
            self._remember(self.history[-n:])

    def sample(self, logits: Any, ban_eos: bool, eos_id: int) -> int:
        """Pick the next token id from one position's logits (a 1-D float tensor)."""
        import torch

        params = self.params
        logits = logits.float()
        if params.repetition_penalty != 1.0:
            penalty = params.repetition_penalty
            punished = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(self.seen, punished, logits)
        n = params.no_repeat_ngram_size
        if n and len(self.history) >= n - 1:
            banned = self.ngrams.get(tuple(self.history[len(self.history) - (n - 1) :]))
            if banned:
                ids = [t for t in banned if not bool(self.exempt[t])]
                if ids:
                    logits[torch.tensor(ids, device=logits.device)] = float("-inf")
        if ban_eos:
            logits[eos_id] = float("-inf")
        if params.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / params.temperature
        if params.top_k and params.top_k < logits.shape[0]:
            values, indices = torch.topk(logits, params.top_k)
        else:
            values, indices = torch.sort(logits, descending=True)
        probs = torch.softmax(values, dim=-1)
        if params.top_p < 1.0:
            # Keep the smallest head of the sorted distribution whose mass reaches top_p.
            cumulative = torch.cumsum(probs, dim=-1)
            probs = probs.masked_fill(cumulative - probs >= params.top_p, 0.0)
        choice = torch.multinomial(probs, 1, generator=self.generator)
        return int(indices[choice])


class Poet:
    """The generation core: finds emotion models, loads them, and streams poems from them."""

    def __init__(
        self, home: DataHome, device: str | None = None, bundled_dir: Path = BUNDLED_DIR
    ) -> None:
        self.home = home
        self.bundled_dir = Path(bundled_dir)
        self.loader = ModelLoader(home, device)
        self.last_stats: GenerationStats | None = None
        self._scan: ModelScan | None = None
        # CPU decoding threads; None picks them per stream from how busy the cores are.
        self.decode_threads: int | None = None
        self._cpu_share = CpuShare()

    @property
    def device(self) -> str:
        """The device poems are generated on (importing torch on first use)."""
        return self.loader.device

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
        """The model that `emotion` resolves to, or a PoetstudioError saying how to get one."""
        return resolve_model(emotion, self.home, self.bundled_dir, scan=self.scan)

    def load(self, emotion: str, on_progress: ProgressFn | None = None) -> ModelInfo:
        """Load `emotion`'s model now (generation loads on demand too); reports progress."""
        return self._get(emotion, on_progress).info

    def _threads_for(self, model: LoadedModel) -> int | None:
        """CPU threads for the next stream: the override, else the cores others leave free."""
        if model.exempt.device.type != "cpu":
            return None
        if self.decode_threads is not None:
            return self.decode_threads
        import torch

        return self._cpu_share.decode_threads(torch.get_num_threads())

    def _get(self, emotion: str, on_progress: ProgressFn | None = None) -> LoadedModel:
        # The loader keeps what is loaded; asking again only activates the emotion's adapter.
        return self.loader.load(self.model_info(emotion), on_progress)

    def stream_poem(
        self,
        emotion: str,
        seed_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield a poem as text chunks: the seed line and a newline first (if any), then the rest.

        `self.last_stats` describes this stream from its start and is final once it ends.
        """
        yield from self.stream_model(self.model_info(emotion), seed_line, params, cancel)

    def stream_model(
        self,
        info: ModelInfo,
        seed_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """`stream_poem` for a given model entry, such as the raw base that evaluation samples."""
        params = (params or SamplingParams()).validate()
        started = time.perf_counter()
        stats = GenerationStats()
        self.last_stats = stats
        model = self.loader.load(info)
        info = model.info
        stats.emotion = info.emotion
        stats.model = f"{info.source} {info.method} {info.path}"
        if info.method == "lora":
            stats.model += f" (base {info.base_spec})"
        stats.device = self.device
        random_seed = int.from_bytes(os.urandom(4), "little")
        stats.seed = params.seed if params.seed is not None else random_seed

        from trainer.textformat import prompt_ids

        seed = clean_seed(seed_line)
        prompt = prompt_ids(model.tokenizer, seed, model.tokens)
        # Leave room to write at least a few lines after the seed line.
        room = max(8, min(params.max_new_tokens, model.context // 2))
        limit = model.context - room
        if len(prompt) > limit:
            newline = model.tokenizer.encode("\n", add_special_tokens=False)
            prompt = prompt[: limit - len(newline)] + newline
            seed = model.tokenizer.decode(prompt[1:], skip_special_tokens=True)
            seed = seed.strip().rstrip("\ufffd")  # a cut may split a character's bytes
            stats.notices.append(
                "the first line was longer than the model's context; "
                f"truncated to {len(prompt) - 1} tokens"
            )
        stats.prompt_tokens = len(prompt)
        counter = _LineCounter(params.max_lines, params.max_stanzas)
        if seed:
            counter.feed(seed + "\n")
            yield seed + "\n"
        try:
            yield from self._decode(model, prompt, params, cancel, stats, counter, started)
        except GeneratorExit:
            if stats.stop_reason is None:
                stats.stop_reason = STOP_CANCELLED
            raise
        except Exception:
            stats.stop_reason = STOP_ERROR
            raise

    def _decode(
        self,
        model: LoadedModel,
        prompt: list[int],
        params: SamplingParams,
        cancel: threading.Event | None,
        stats: GenerationStats,
        counter: _LineCounter,
        started: float,
    ) -> Iterator[str]:
        """The token loop: one forward per token on the KV cache, until a stop rule fires."""
        import torch

        eos = model.tokens.eos
        sampler = _Sampler(params, model, prompt, stats.seed or 0)
        detok = _Detokenizer(model.tokenizer)
        max_tokens = min(params.max_new_tokens, model.context - len(prompt))
        first_at: float | None = None

        def finish(reason: str) -> None:
            stats.stop_reason = reason
            if first_at is not None and stats.tokens > 1:
                stats.tokens_per_s = (stats.tokens - 1) / max(time.perf_counter() - first_at, 1e-9)

        stats.cpu_threads = self._threads_for(model)
        with torch.inference_mode(), _torch_threads(stats.cpu_threads):
            ids = torch.tensor([prompt], dtype=torch.long, device=model.exempt.device)
            cache = None
            step = torch.empty((1, 1), dtype=torch.long, device=ids.device)
            while True:
                if cancel is not None and cancel.is_set():
                    finish(STOP_CANCELLED)
                    return
                if stats.tokens >= max_tokens:
                    full = stats.tokens < params.max_new_tokens
                    finish(STOP_CONTEXT if full else STOP_MAX_TOKENS)
                    return
                with self.loader.lock:
                    self.loader.activate(model)
                    kwargs = {model.cache_arg: cache}
                    out = model.module(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs)
                cache = getattr(out, model.cache_arg)
                token = sampler.sample(out.logits[0, -1], counter.lines < params.min_lines, eos)
                stats.tokens += 1
                if first_at is None:
                    first_at = time.perf_counter()
                    stats.ttft_s = first_at - started
                if token == eos:
                    finish(STOP_EOS)
                    return
                sampler.push(token)
                text = clean_output(detok.push(token))
                if text:
                    keep, reason = counter.feed(text)
                    if keep:
                        yield text[:keep]
                    if reason:
                        finish(reason)
                        return
                step[0, 0] = token
                ids = step
