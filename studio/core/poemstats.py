"""How the studio and `write` describe what generating one poem did: its speed and its stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.settings import strength_label

if TYPE_CHECKING:
    from studio.core.generation.stats import GenerationStats


def ttft_label(stats: GenerationStats) -> str:
    """Time to the first token, `TTFT 120 ms`; empty when no token came."""
    return f"TTFT {stats.ttft_s * 1000:.0f} ms" if stats.ttft_s is not None else ""


def speed_label(stats: GenerationStats) -> str:
    """The decoding rate, when there is one, and the token count: `42.0 tokens/s · 80 tokens`."""
    rate = f"{stats.tokens_per_s:.1f} tokens/s · " if stats.tokens_per_s else ""
    return f"{rate}{stats.tokens} tokens"


def stats_line(stats: GenerationStats) -> str:
    """One line for a finished poem: emotion, speed, why it stopped, guidance and seed."""
    parts = [
        stats.emotion or "",
        ttft_label(stats),
        speed_label(stats),
        f"stop: {stats.stop_reason}",
        strength_label(stats.strength),
        f"seed {stats.seed}",
    ]
    return " · ".join(part for part in parts if part)


def runtime_label(stats: GenerationStats) -> str:
    """What decoded the poem, for its record: `torch fp32 on AMD EPYC 7B13` (a seed reproduces a
    poem only on the same); empty when unknown."""
    what = " ".join(part for part in (stats.backend, stats.dtype) if part)
    if stats.processor:
        what = f"{what} on {stats.processor}" if what else stats.processor
    return what
