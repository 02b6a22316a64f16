"""How many threads CPU decoding should use: all of torch's, unless other processes hold the cores.

Decoding one token at a time splits every small matrix-vector product across torch's threads,
with a barrier after each. On idle cores more threads are faster (measured: 25 against 19
tokens/s on two cores). But when another process, such as a training job, keeps the cores busy,
a thread that is not scheduled stalls every barrier: decoding on two shared cores fell to about
2 tokens/s, where one thread still made about 24. So each stream looks at how busy the machine
was, apart from this process, since the last look, and uses only the cores left free.
"""

from __future__ import annotations

import os


def _usable_cores() -> int:
    """The cores this process may run on (its affinity, where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class CpuShare:
    """Tracks how many cores other processes leave free, between successive looks."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        # The first readings only start the measuring window.
        psutil.cpu_percent(interval=None)
        self._process.cpu_percent(interval=None)

    def free_cores(self) -> float:
        """Cores not used by other processes since the last call (or since creation)."""
        total = self._psutil.cpu_count() or 1
        busy = self._psutil.cpu_percent(interval=None) / 100 * total
        own = self._process.cpu_percent(interval=None) / 100
        others = max(0.0, busy - own)
        return max(0.0, min(_usable_cores(), total - others))

    def decode_threads(self, available: int) -> int:
        """Threads for the next stream: the free cores, at least one, at most `available`."""
        return max(1, min(available, round(self.free_cores())))
