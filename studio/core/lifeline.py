"""A child process that ends with its parent, however the parent ends (kill -9 included).

`poetstudio serve` runs one studio process per browser tab. Were the server killed outright,
its studios would live on without a browser, each holding a model in memory. A studio that calls
`die_with_parent` first is killed by the kernel when its server dies (Linux: the parent-death
signal), or, where that does not exist, by a watch thread that sees it re-parented.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# How often the watch (where there is no parent-death signal) looks at the parent.
WATCH_S = 0.2


def die_with_parent(parent: int) -> None:
    """Have this process killed when `parent`, the process that started it, exits.

    Exits at once if `parent` is already gone (the process was re-parented before the call).
    Children this process starts later (training jobs) are not affected.
    """
    if sys.platform.startswith("linux") and _set_parent_death_signal():
        # Set after the fork: if the parent died in between, no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)
        return
    threading.Thread(target=_watch, args=(parent,), name="lifeline", daemon=True).start()


def _set_parent_death_signal() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    # A process whose parent exits is re-parented (to init or a subreaper): its ppid changes.
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    os._exit(1)  # at once, as the parent-death signal would: nothing is left to serve
