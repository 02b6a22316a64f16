"""End to end in a real terminal: tests/tui/tmux_drive.sh opens the installed studio in tmux, writes
and saves a poem with a tiny joy model, and quits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("tmux_drive.sh")
STUDIO = Path(sys.prefix) / "bin" / "poetstudio"
# Per-step limits well inside the overall one, so a stuck step fails with its own message.
STEP_LIMITS = {"DRIVE_START_S": "25", "DRIVE_LOAD_S": "35", "DRIVE_POEM_S": "35"}
LIMIT_S = 120


@pytest.mark.subprocess
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.skipif(not STUDIO.exists(), reason="the poetstudio console script is not installed")
def test_studio_in_tmux_writes_saves_and_quits() -> None:
    with subprocess.Popen(
        ["bash", str(SCRIPT)],
        env={**os.environ, **STEP_LIMITS},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            # SIGTERM, not SIGKILL: the script's trap stops its tmux server and removes its home.
            proc.terminate()
            output, _ = proc.communicate()
            pytest.fail(f"tmux_drive.sh ran past {LIMIT_S}s:\n{output}")
    assert proc.returncode == 0, output
    assert "==> ok:" in output
