"""How fast the studio shows its first interactive frame, and what its imports cost.

Launches the real `poetstudio` console script in a pseudo-terminal, times from spawn until the
footer (the last widget drawn) has been written to the terminal, then quits it with ctrl+q.
Reports the median of several runs, and the import time of the app module in a fresh interpreter
beside that of torch, side by side.

    .venv/bin/python benchmarks/bench_app_startup.py [--runs 7] [--home DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = b"palette"  # the footer's command-palette hint: drawn once the whole screen is up
TIMEOUT_S = 30.0


def first_frame_s(command: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning `command` in a 120x36 pty until MARKER has been written."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(command[0], command, env)
    start = time.perf_counter()
    seen = b""
    try:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        while time.perf_counter() - start < TIMEOUT_S:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen = (seen + chunk)[-4096:]
            if MARKER in seen:
                elapsed = time.perf_counter() - start
                break
        else:
            raise RuntimeError("the app drew no footer within the timeout")
        os.write(fd, b"\x11")  # ctrl+q
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            select.select([fd], [], [], 0.1)
            with contextlib.suppress(OSError):
                os.read(fd, 65536)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return elapsed
    finally:
        os.close(fd)


def import_s(module: str) -> float:
    """Seconds to import `module` in a fresh interpreter (median of 3)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = [
        float(subprocess.check_output([sys.executable, "-c", code], text=True)) for _ in range(3)
    ]
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--home", help="data home to open (default: an empty temporary one)")
    args = parser.parse_args()
    script = shutil.which("poetstudio") or str(Path(sys.executable).with_name("poetstudio"))
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, TERM="xterm-256color", POETSTUDIO_HOME=args.home or scratch)
        first_frame_s([script], env)  # warm the file cache once
        runs = [first_frame_s([script], env) for _ in range(args.runs)]
    print(
        f"first interactive frame (poetstudio, {args.runs} runs): "
        f"median {statistics.median(runs) * 1000:.0f} ms, "
        f"min {min(runs) * 1000:.0f} ms, max {max(runs) * 1000:.0f} ms (target 1000 ms)"
    )
    app_import = import_s("studio.tui.app")
    torch_import = import_s("torch")
    print(
        f"import studio.tui.app: {app_import * 1000:.0f} ms; "
        f"import torch: {torch_import * 1000:.0f} ms "
        f"(ratio {torch_import / app_import:.1f}x, paid after the first frame)"
    )


if __name__ == "__main__":
    main()
