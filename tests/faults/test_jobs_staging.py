"""Staging folders that a job killed by kill -9 left behind are swept at start-up; a staging
folder whose writer is alive, or that was made an instant ago, is left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from trainer.common.atomic import STALE_STAGING_S, sweep_staging
from trainer.common.home import DataHome
from trainer.jobs.control import prepare_job
from trainer.training.checkpoint import META

# A writer of a new trust model, killed by the test while it writes.
WRITER = """
import sys, time
from pathlib import Path
from trainer.common.atomic import staged_dir
with staged_dir(Path(sys.argv[1])) as staged:
    (staged / "adapter_model.safetensors").write_bytes(b"half a model")
    print(staged, flush=True)
    time.sleep(600)
"""


def start_writer(final: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(final)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def make_old(path: Path) -> None:
    """As if the staging folder had last changed long ago."""
    past = time.time() - 10 * STALE_STAGING_S
    os.utime(path, (past, past))


def test_a_staging_folder_left_by_a_killed_writer_is_swept_when_the_home_opens(
    home: DataHome,
) -> None:
    writer, staged = start_writer(home.models / "trust")
    try:
        assert staged.is_dir() and staged.name.startswith(".trust.staging-")
        make_old(staged)
        home.ensure()
        assert staged.is_dir()  # its writer is still at work
    finally:
        writer.kill()
        writer.wait()
    make_old(staged)
    home.ensure()
    assert not staged.exists()
    assert sorted(p.name for p in home.models.iterdir()) == []


def test_a_staging_folder_made_an_instant_ago_is_left_for_its_writer_to_lock(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / ".model.staging-abc"
    fresh.mkdir()
    assert sweep_staging(tmp_path) == [] and fresh.is_dir()
    make_old(fresh)
    assert sweep_staging(tmp_path) == [fresh] and not fresh.exists()


def test_resuming_a_job_sweeps_the_checkpoint_its_killed_process_was_writing(
    home: DataHome,
) -> None:
    job_id = "20250101-000000-trust-aaaa"
    folder = home.jobs / job_id
    (folder / "checkpoint").mkdir(parents=True)
    (folder / "checkpoint" / META).write_text("{}")
    job = {"id": job_id, "emotion": "trust", "args": ["--emotion", "trust"], "pid": None}
    (folder / "job.json").write_text(json.dumps(job))
    left = folder / ".checkpoint.staging-x1y2"
    left.mkdir()
    (left / "weights.safetensors").write_bytes(b"half a checkpoint")
    make_old(left)
    assert prepare_job(home, ["--emotion", "trust", "--resume"]) == folder
    assert not left.exists() and (folder / "checkpoint" / META).is_file()
