"""Streaming poems from an emotion model: sampling settings, stop rules, and the decoding loop.

The loop is written out here instead of calling `model.generate`: one forward per token on a KV
cache, vectorised logits processing on preallocated tensors, incremental detokenisation, and a
cancel Event checked before every token, so a stream stops within one token.

Stop rules, checked as the text grows (a "line" is a non-empty line; the seed line is line one):
- eos, once the poem has `min_lines` lines (before that eos is suppressed);
- `max_lines` lines, `max_new_tokens` tokens, or the model's context being full;
- a blank line that would open stanza `max_stanzas + 1`.

Emotion guidance (`SamplingParams.strength`, s). Each step scores the next token from the emotion
model's log-probabilities lp_E and the neutral model's lp_N on the same context, as
`lp_E + s * (lp_E - lp_N)` (DExperts' `base + alpha * (expert - anti-expert)` with alpha = s + 1);
a blend of emotions E_i with weights w_i scores `lp_N + (1 + s) * sum_i w_i * (lp_E_i - lp_N)`. The
choice is restricted to the neutral model's top-p 0.9 nucleus plus each emotion model's own top
token: the neutral model keeps the verse plausible while the difference pushes it toward the
emotion. The penalties, temperature, top-k and top-p then apply as in plain sampling, and s = 0 is
plain sampling of the emotion model, token for token. All the models run as rows of one batched
forward when they are LoRA adapters on one base (one KV cache), else one forward each.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models import BUNDLED_DIR
from studio.core.blend import Blend, parse_blend
from studio.core.cputhreads import CpuShare
from studio.core.loader import LoadedModel, ModelLoader, ProgressFn
from studio.core.registry import ModelInfo, ModelScan, resolve_model, scan_models
from studio.core.stutter import StutterGuard
from trainer.common.emotions import NEUTRAL
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# Stop reasons reported in GenerationStats.stop_reason.
STOP_EOS = "eos"
STOP_MAX_LINES = "max_lines"
STOP_MAX_TOKENS = "max_tokens"
STOP_MAX_STANZAS = "max_stanzas"
STOP_CONTEXT = "context"
STOP_CANCELLED = "cancelled"
STOP_ERROR = "error"

# Guidance strength: the default was chosen by `poetstudio eval --strength ...` (models/README.md).
DEFAULT_STRENGTH = 1.0
MAX_STRENGTH = 5.0
# The neutral model's nucleus that guided choices must stay inside.
GUIDANCE_NUCLEUS = 0.9
# Sampling bounds: below the lowest temperature the scaled scores overflow to inf and NaN; torch's
# generators take seeds below 2**64, and a poem's seed is counted up from the one given.
TEMPERATURE_LIMITS = (1e-3, 10.0)
MAX_REPETITION_PENALTY = 10.0
SEED_LIMIT = 2**63


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
    # Emotion guidance: 0 samples the emotion model alone; see the module docstring.
    strength: float = DEFAULT_STRENGTH
    seed: int | None = None
    stutter_guard: bool = True  # see studio.core.stutter

    def validate(self) -> SamplingParams:
        """Return self if every setting is in range, else raise a one-line PoetstudioError.

        Every check is written as "inside the range", so NaN fails them all.
        """
        low, high = TEMPERATURE_LIMITS
        checks = [
            (
                self.temperature == 0 or low <= self.temperature <= high,
                f"temperature must be 0 (greedy) or a number from {low:g} to {high:g}",
            ),
            (self.top_k >= 0, "top-k must be >= 0 (0 turns it off)"),
            (0 < self.top_p <= 1, "top-p must be in (0, 1]"),
            (
                0 < self.repetition_penalty <= MAX_REPETITION_PENALTY,
                f"repetition penalty must be above 0 and at most {MAX_REPETITION_PENALTY:g}"
                " (1 turns it off)",
            ),
            (self.no_repeat_ngram_size >= 0, "no-repeat n-gram size must be >= 0 (0 turns it off)"),
            (self.min_lines >= 0, "min lines must be >= 0"),
            (self.max_lines >= 1, "max lines must be >= 1"),
            (self.max_new_tokens >= 1, "max new tokens must be >= 1"),
            (self.max_stanzas >= 1, "max stanzas must be >= 1"),
            (
                math.isfinite(self.strength) and 0 <= self.strength <= MAX_STRENGTH,
                f"strength must be a number from 0 to {MAX_STRENGTH:g}",
            ),
            (
                self.seed is None or 0 <= self.seed < SEED_LIMIT,
                f"seed must be a whole number from 0 to {SEED_LIMIT - 1}",
            ),
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
    emotion: str | None = None  # the emotion, or a blend's canonical spec
    strength: float = 0.0  # the guidance strength applied (0 when it had to fall back)
    model: str | None = None  # where the model came from, for saved poems
    device: str | None = None
    cpu_threads: int | None = None  # torch threads decoding used on a CPU
    notices: list[str] = field(default_factory=list)  # e.g. the seed line was truncated


# Format characters that text needs: the joiners hold emoji sequences (and some scripts' letters)
# together, and tag characters spell subdivision flags. Every other format character goes: bidi
# overrides and isolates could reorder what a terminal shows. (Variation selectors are marks, Mn.)
_KEPT_FORMAT = frozenset("\u200c\u200d") | frozenset(map(chr, range(0xE0020, 0xE0080)))


def _shown(ch: str) -> bool:
    """Whether a non-whitespace character may reach a terminal or a poems file."""
    category = unicodedata.category(ch)
    return category != "Cc" and (category != "Cf" or ch in _KEPT_FORMAT)


def clean_seed(text: str) -> str:
    """A seed line as one printable line: whitespace runs become one space, controls go."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif _shown(ch):
            out.append(ch)
    return " ".join("".join(out).split())


def clean_output(text: str) -> str:
    """Model text without control characters other than newline (they could drive a terminal)."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch == "\n" else " " if ch == "\t" else ch for ch in text if ch in "\n\t" or _shown(ch)
    )


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

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0
        self.read = 0

    def push(self, token_id: int) -> str:
        """Add a token and return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        # transformers types decode without overloads; one sequence decodes to a str.
        decode: Callable[..., str] = self.tokenizer.decode  # type: ignore[assignment]
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
        self.stutter = StutterGuard(model.tokenizer, self.history) if params.stutter_guard else None

    def _remember(self, gram: list[int]) -> None:
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])

    def push(self, token_id: int) -> None:
        """Record a generated token for the repetition rules."""
        self.history.append(token_id)
        if not bool(self.exempt[token_id]):
            self.seen[token_id] = True
        if self.stutter is not None:
            self.stutter.observe(token_id)
        n = self.params.no_repeat_ngram_size
        if n and len(self.history) >= n:
            self._remember(self.history[-n:])

    def sample(
        self, logits: torch.Tensor, ban_eos: bool, eos_id: int, allowed: torch.Tensor | None = None
    ) -> int:
        """Pick the next token id from one position's scores (a 1-D float tensor).

        `allowed` (a bool mask over the vocabulary, or None for all) restricts the choice. Should
        the restriction and the repetition bans leave no candidate at all, this one token is
        chosen without the restriction and the n-gram ban.
        """
        import torch

        logits = logits.float()
        if not bool(torch.isfinite(logits).all()):
            raise PoetstudioError(
                "the model produced non-finite scores (NaN or inf): its weights are damaged; "
                "retrain it or restore its folder"
            )
        scores = self._restricted(logits.clone(), ban_eos, eos_id, allowed, ngram_ban=True)
        if self.stutter is not None:
            scores = self.stutter.adjust(scores)
        if not bool(torch.isfinite(scores).any()):
            scores = self._restricted(logits, ban_eos, eos_id, None, ngram_ban=False)
            # Outside the restriction, a word that would stutter still has other candidates.
            guarded = scores if self.stutter is None else self.stutter.adjust(scores)
            scores = guarded if bool(torch.isfinite(guarded).any()) else scores
        return self._draw(scores)

    def _restricted(
        self,
        logits: torch.Tensor,
        ban_eos: bool,
        eos_id: int,
        allowed: torch.Tensor | None,
        ngram_ban: bool,
    ) -> torch.Tensor:
        """The scores with the mask, the repetition penalty and the bans applied."""
        import torch

        params = self.params
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        if params.repetition_penalty != 1.0:
            penalty = params.repetition_penalty
            punished = torch.where(logits > 0, logits / penalty, logits * penalty)
            logits = torch.where(self.seen, punished, logits)
        n = params.no_repeat_ngram_size
        if ngram_ban and n and len(self.history) >= n - 1:
            banned = self.ngrams.get(tuple(self.history[len(self.history) - (n - 1) :]))
            if banned:
                ids = [t for t in banned if not bool(self.exempt[t])]
                if ids:
                    logits[torch.tensor(ids, device=logits.device)] = float("-inf")
        if ban_eos:
            logits[eos_id] = float("-inf")
        return logits

    def _draw(self, logits: torch.Tensor) -> int:
        """Temperature, top-k and top-p, then one draw from the sampler's own generator."""
        import torch

        params = self.params
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


def nucleus_mask(logprobs: torch.Tensor, top_p: float, head: int = 4096) -> torch.Tensor:
    """The smallest set of tokens whose probability mass reaches `top_p`, as a bool mask.

    The `head` most likely tokens nearly always hold that mass; on this CPU a full sort of a 49k
    vocabulary took about 5 ms a token, a top-4096 about 0.2 ms (a top-512 missed the mass at a
    third of the steps of a real poem: the neutral model is flat where a line begins).
    """
    import torch

    probs = logprobs.exp()
    count = min(head, probs.shape[0])
    top, order = torch.topk(probs, count)
    if count < probs.shape[0] and float(top.sum()) < top_p:
        top, order = torch.sort(probs, descending=True)
    keep = torch.cumsum(top, dim=-1) - top < top_p
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[order[keep]] = True
    return mask


def guided_scores(
    logits: torch.Tensor,
    weights: Sequence[float],
    strength: float,
    nucleus: float = GUIDANCE_NUCLEUS,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Next-token scores and the allowed-token mask (None: all) from a batch of model rows.

    `logits` is [rows, vocab]: one row per emotion of the blend (with `weights`), then, when
    `strength` > 0, the neutral model's row. The scores are the weighted emotion logits plus
    `strength * sum_i w_i (lp_E_i - lp_N)`: up to a constant, the module docstring's formula, on
    the logit scale the repetition penalty was made for.
    """
    import torch

    k = len(weights)
    experts = logits[:k].float()
    if k == 1 and strength == 0:
        return experts[0], None
    w = torch.tensor(list(weights), dtype=experts.dtype, device=experts.device)[:, None]
    mixed = (w * experts).sum(0)
    if strength == 0:
        return mixed, None
    logprobs = torch.log_softmax(logits[: k + 1].float(), dim=-1)
    neutral_lp = logprobs[k]
    scores = mixed + strength * (w * (logprobs[:k] - neutral_lp)).sum(0)
    allowed = nucleus_mask(neutral_lp, nucleus)
    allowed[experts.argmax(dim=-1)] = True
    return scores, allowed


class RowForward:
    """Next-token logits of several models, one batch row each, with their KV caches.

    Rows of one full model, or of LoRA adapters on one loaded base, run as one batched forward on
    one cache; any other mix (different modules, adapters the per-row forward does not take) runs
    one forward per row.
    """

    def __init__(self, loader: ModelLoader, models: list[LoadedModel]) -> None:
        self.loader = loader
        self.models = list(models)
        self.caches: list[Any] = [None] * len(models)
        with loader.lock:
            self.batched = len(models) > 1 and self._activate()

    def _activate(self) -> bool:
        first = self.models[0]
        if all(m.adapter is None and m.module is first.module for m in self.models):
            return True
        return self.loader.activate_rows(self.models)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed `ids` ([1, tokens] for every row alike, or [rows, tokens]); return the last
        position's logits, [rows, vocab]."""
        import torch

        with self.loader.lock:
            if self.batched:
                self._activate()
                model = self.models[0]
                rows = ids.expand(len(self.models), -1) if ids.shape[0] == 1 else ids
                out = model.module(
                    input_ids=rows,
                    use_cache=True,
                    logits_to_keep=1,
                    **{model.cache_arg: self.caches[0]},
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
        """Keep only the rows at `indices` (in that order), their caches included."""
        import torch

        self.models = [self.models[i] for i in indices]
        if not self.batched:
            self.caches = [self.caches[i] for i in indices]
        elif self.caches[0] is not None:
            self.caches[0].batch_select_indices(torch.tensor(indices))


class Poet:
    """The generation core: finds emotion models, loads them, and streams poems from them."""

    def __init__(
        self,
        home: DataHome,
        device: str | None = None,
        bundled_dir: Path = BUNDLED_DIR,
        precision: str | None = None,
    ) -> None:
        self.home = home
        self.bundled_dir = Path(bundled_dir)
        self.loader = ModelLoader(home, device, precision=precision or "auto")
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
            self.loader.load(info, on_progress)
        neutral = self.scan.models.get(NEUTRAL)
        if blend.primary != NEUTRAL and neutral is not None:
            with contextlib.suppress(PoetstudioError):  # guidance reports it when it streams
                self.loader.load(neutral, on_progress)
        return self.model_info(emotion)

    def _threads_for(self, model: LoadedModel) -> int | None:
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
        seed_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield a poem as text chunks: the seed line and a newline first (if any), then the rest.

        `emotion` is one emotion or a blend (`joy+sadness`, `joy=0.7+sadness=0.3`); with
        `params.strength` > 0 it is guided against the neutral model. `self.last_stats`
        describes this stream from its start and is final once it ends.
        """
        blend = parse_blend(emotion)
        yield from self._stream(blend, self.resolve(blend), seed_line, params, cancel)

    def stream_model(
        self,
        info: ModelInfo,
        seed_line: str,
        params: SamplingParams | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Plain sampling (no guidance) of a given model entry, such as the raw base."""
        blend = Blend(((info.emotion, 1.0),))
        yield from self._stream(blend, [info], seed_line, params, cancel, guide=False)

    def _stream(
        self,
        blend: Blend,
        infos: list[ModelInfo],
        seed_line: str,
        params: SamplingParams | None,
        cancel: threading.Event | None,
        guide: bool = True,
    ) -> Iterator[str]:
        started = time.perf_counter()
        plan = self.plan(blend, infos, seed_line, params, guide)
        self.last_stats = plan.stats
        stats = plan.stats
        if plan.seed:
            yield plan.seed + "\n"
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
        seed_line: str,
        params: SamplingParams | None = None,
        guide: bool = True,
    ) -> PoemPlan:
        """Load what one poem needs and fix how it is decoded: rows, strength, prompt, stats."""
        params = (params or SamplingParams()).validate()
        stats = GenerationStats()
        experts = [self.loader.load(info) for info in infos]
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
        random_seed = int.from_bytes(os.urandom(4), "little")
        stats.seed = params.seed if params.seed is not None else random_seed

        from trainer.common.textformat import prompt_ids

        context = min(loaded.context for loaded in rows)
        seed = clean_seed(seed_line)
        prompt = prompt_ids(model.tokenizer, seed, model.tokens)
        # Leave room to write at least a few lines after the seed line.
        room = max(8, min(params.max_new_tokens, context // 2))
        limit = context - room
        if len(prompt) > limit:
            newline = model.tokenizer.encode("\n", add_special_tokens=False)
            prompt = prompt[: limit - len(newline)] + newline
            # transformers types decode without overloads; one sequence decodes to a str.
            seed = model.tokenizer.decode(prompt[1:], skip_special_tokens=True)  # type: ignore[assignment]
            seed = seed.strip().rstrip("\ufffd")  # a cut may split a character's bytes
            stats.notices.append(
                "the first line was longer than the model's context; "
                f"truncated to {len(prompt) - 1} tokens"
            )
        stats.prompt_tokens = len(prompt)
        stats.cpu_threads = self._threads_for(model)
        return PoemPlan(model, rows, blend.weights, strength, context, prompt, seed, params, stats)

    def _neutral_for(self, model: LoadedModel) -> tuple[LoadedModel | None, str]:
        """The neutral model to guide `model` against, or None and why there is none."""
        info = self.scan.models.get(NEUTRAL)
        if info is None:
            hint = "train one with `poetstudio train --emotion neutral`"
            problem = self.scan.problems.get(NEUTRAL)
            return None, f"no neutral model to guide against ({problem or hint})"
        try:
            neutral = self.loader.load(info)
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

        poem = PoemState(plan, started)
        with torch.inference_mode(), torch_threads(plan.stats.cpu_threads):
            forward = RowForward(self.loader, plan.rows)
            ids = torch.tensor([plan.prompt], dtype=torch.long, device=plan.model.exempt.device)
            step = torch.empty((1, 1), dtype=torch.long, device=ids.device)
            while True:
                if cancel is not None and cancel.is_set():
                    poem.finish(STOP_CANCELLED)
                    return
                if not poem.has_room():
                    return
                token = poem.choose(forward.step(ids))
                text = poem.take(token)
                if text:
                    yield text
                if poem.done:
                    return
                step[0, 0] = token
                ids = step


@dataclass
class PoemPlan:
    """How one poem is decoded: the main model, every row, the guidance, the prompt, the stats."""

    model: LoadedModel  # its tokenizer, poem tokens and exempt table serve every row
    rows: list[LoadedModel]  # the blend's emotions in order, then neutral when guided
    weights: tuple[float, ...]
    strength: float  # as applied: 0 when guidance fell back
    context: int
    prompt: list[int]
    seed: str  # the first line as it will be shown (cleaned, maybe truncated)
    params: SamplingParams
    stats: GenerationStats


class PoemState:
    """One poem being decoded: its sampler, line counter, detokenizer and stop rules.

    The streaming loop and batched writing both drive it: `has_room`, then `choose` from the
    logits of the poem's rows, then `take` the token, until `done`.
    """

    def __init__(self, plan: PoemPlan, started: float) -> None:
        params = plan.params
        self.plan = plan
        self.stats = plan.stats
        self.started = started
        self.sampler = _Sampler(params, plan.model, plan.prompt, self.stats.seed or 0)
        self.detok = _Detokenizer(plan.model.tokenizer)
        self.counter = _LineCounter(params.max_lines, params.max_stanzas)
        if plan.seed:
            self.counter.feed(plan.seed + "\n")
        self.max_tokens = min(params.max_new_tokens, plan.context - len(plan.prompt))
        self.first_at: float | None = None
        self.done = False

    def finish(self, reason: str) -> None:
        """End the poem with `reason` and fix its decoding rate."""
        stats = self.stats
        stats.stop_reason = reason
        self.done = True
        if self.first_at is not None and stats.tokens > 1:
            elapsed = max(time.perf_counter() - self.first_at, 1e-9)
            stats.tokens_per_s = (stats.tokens - 1) / elapsed

    def has_room(self) -> bool:
        """Whether another token may be written; ends the poem at its token limit if not."""
        if self.stats.tokens < self.max_tokens:
            return True
        full = self.stats.tokens < self.plan.params.max_new_tokens
        self.finish(STOP_CONTEXT if full else STOP_MAX_TOKENS)
        return False

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from this poem's rows of logits ([rows, vocab])."""
        plan = self.plan
        scores, allowed = guided_scores(logits, plan.weights, plan.strength)
        ban_eos = self.counter.lines < plan.params.min_lines
        token = self.sampler.sample(scores, ban_eos, plan.model.tokens.eos, allowed)
        self.stats.tokens += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
            self.stats.ttft_s = self.first_at - self.started
        return token

    def take(self, token: int) -> str:
        """Add `token` to the poem; return the text it adds (possibly empty)."""
        if token == self.plan.model.tokens.eos:
            self.finish(STOP_EOS)
            return ""
        self.sampler.push(token)
        text = clean_output(self.detok.push(token))
        if not text:
            return ""
        keep, reason = self.counter.feed(text)
        if reason:
            self.finish(reason)
        return text[:keep]


def _describe(info: ModelInfo) -> str:
    """Where a model came from, for stats and saved poems."""
    text = f"{info.source} {info.method} {info.path}"
    return text + (f" (base {info.base_spec})" if info.method == "lora" else "")


def _same_vocabulary(a: LoadedModel, b: LoadedModel) -> bool:
    """Whether two models score the same tokens (one shared tokenizer, or equal vocabularies)."""
    if a.tokenizer is b.tokenizer:
        return True
    if a.exempt.shape != b.exempt.shape or a.tokens != b.tokens:
        return False
    return bool(a.tokenizer.get_vocab() == b.tokenizer.get_vocab())
