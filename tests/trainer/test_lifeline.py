"""A child that called `die_with_parent` dies with its parent, killed with SIGKILL included, by
the parent-death signal and by the watch used where that signal does not exist."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

# The child ties itself to its parent, then says so by writing its pid.
CHILD = """
import os, sys, time
import trainer.common.lifeline as lifeline
if sys.argv[2] == "watch":
    lifeline._set_parent_death_signal = lambda: False  # as on a platform without it
lifeline.die_with_parent(os.getppid())
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""
PARENT = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(120)"


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.subprocess
@pytest.mark.parametrize("mechanism", ["signal", "watch"])
def test_a_child_dies_when_its_parent_is_killed_outright(tmp_path: Path, mechanism: str) -> None:
    if mechanism == "signal" and not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, sys.executable, "-c", CHILD, str(pid_file), mechanism]
    )
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file():
            assert parent.poll() is None and time.monotonic() < deadline, "no child started"
            time.sleep(0.05)
        child = psutil.Process(int(pid_file.read_text()))
        assert child.ppid() == parent.pid
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while not _gone(child):
            if time.monotonic() > deadline:
                child.kill()
                pytest.fail("the child outlived its killed parent")
            time.sleep(0.05)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.subprocess
def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    # Its parent is this test, not the pid it is told: as if re-parented before the call.
    other = os.getpid() + 1 if os.getpid() != 1 else 2
    code = f"import time, trainer.common.lifeline as l; l.die_with_parent({other}); time.sleep(60)"
    result = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert result.returncode == -signal.SIGKILL
