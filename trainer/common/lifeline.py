"""A child process that ends with its parent, however the parent ends (kill -9 included).

`poetstudio serve` runs one studio process per browser tab, and a training job under torchrun
one process per rank. Were the server or the launcher killed outright, those children would live
on, each holding a model in memory (and ranks would go on writing the job's folder). A child that
calls `die_with_parent` first is killed by the kernel when its parent dies (Linux: the
parent-death signal), or, where that does not exist, by a watch thread that sees it re-parented.
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
    Children this process starts later (a studio's training jobs) are not affected.
    """
    if sys.platform.startswith("linux") and _set_parent_death_signal():
        # Set after the fork: if the parent died in between, no signal will ever come.
        if os.getppid() != parent:
            _die()
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
    _die()


def _die() -> None:
    # At once and as the parent-death signal would end it: nothing is left to serve or save.
    os.kill(os.getpid(), signal.SIGKILL)
