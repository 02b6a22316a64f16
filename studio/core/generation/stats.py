"""What one stream did, and why it stopped: filled in as it runs, final once it ends."""

from __future__ import annotations

from dataclasses import dataclass, field

# Stop reasons reported in GenerationStats.stop_reason.
STOP_EOS = "eos"
STOP_MAX_LINES = "max_lines"
STOP_MAX_TOKENS = "max_tokens"
STOP_MAX_STANZAS = "max_stanzas"
STOP_CONTEXT = "context"
STOP_CANCELLED = "cancelled"
STOP_ERROR = "error"


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
    # A seed reproduces a poem only on the same backend, dtype and processor: saved poems say so.
    backend: str | None = None
    dtype: str | None = None
    processor: str | None = None  # the CPU's name, or the accelerator's
    notices: list[str] = field(default_factory=list)  # e.g. the first line was truncated
    # A formed poem writes a forced line again (line_tries.py): how often, and the tokens of the
    # tries not kept (not counted in `tokens`).
    rewritten_lines: int = 0
    discarded_tokens: int = 0
