"""Background training jobs as real processes: detach and follow, signals, the lock, kill -9."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.models import build_tiny_lora
from tests.helpers.training import config_args, tiny_config, write_dataset
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import follow, job_dir, list_jobs, read_job, start_job, stop_job
from trainer.jobs.events import EVENTS_FILE, JobProgress
from trainer.jobs.locks import is_locked
from trainer.training.checkpoint import load_checkpoint


def wait_for(check: Callable[[], bool], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def kinds(home: DataHome, job_id: str) -> list[str]:
    path = job_dir(home, job_id) / EVENTS_FILE
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def dump_log(home: DataHome, job_id: str) -> str:
    return (job_dir(home, job_id) / "log.txt").read_text()


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def long_run(base: Path, **overrides: object) -> list[str]:
    values = {"max_steps": 5000, "eval_every": 5000, "checkpoint_every": 5000, **overrides}
    return config_args(tiny_config(base, **values))


def test_detach_then_follow_to_the_end(data_home: DataHome, tiny_base: Path) -> None:
    job_id = start_job(data_home, config_args(tiny_config(tiny_base, max_steps=4, eval_every=2)))
    seen: list[JobProgress] = []
    final = follow(data_home, job_id, lambda p: seen.append(JobProgress(**vars(p))), poll_s=0.05)
    assert final.status == "done", dump_log(data_home, job_id)
    assert final.step == 4 and final.val_ppl is not None and final.emotion == "trust"
    assert any(p.status == "running" for p in seen)
    [info] = list_jobs(data_home)
    assert info.id == job_id and info.state == "done" and not info.alive and not info.resumable
    assert (data_home.models / "trust" / "poetstudio.json").is_file()


def test_stop_checkpoints_the_lock_refuses_and_resume_continues(
    data_home: DataHome, tiny_base: Path
) -> None:
    job_id = start_job(data_home, long_run(tiny_base))
    wait_for(lambda: "step" in kinds(data_home, job_id))
    assert is_locked(data_home, "trust") == job_id
    with pytest.raises(PoetstudioError, match=f"already training \\(job {job_id}\\)"):
        start_job(data_home, long_run(tiny_base))
    assert stop_job(data_home, job_id, wait_s=60)
    assert kinds(data_home, job_id)[-2:] == ["checkpoint", "stopped"], dump_log(data_home, job_id)
    [info] = list_jobs(data_home)
    assert info.state == "stopped" and info.resumable and is_locked(data_home, "trust") is None
    _, state = load_checkpoint(info.path / "checkpoint")
    assert state["step"] == info.progress.step >= 1

    # --resume reopens the same job; Ctrl-C (SIGINT) stops it the same graceful way.
    assert start_job(data_home, ["--emotion", "trust", "--resume"]) == job_id
    wait_for(lambda: kinds(data_home, job_id).count("start") == 2)
    wait_for(lambda: kinds(data_home, job_id)[-1] == "step")
    os.kill(int(read_job(info.path)["pid"]), signal.SIGINT)
    wait_for(lambda: kinds(data_home, job_id)[-1] == "stopped")
    events = [json.loads(x) for x in (info.path / EVENTS_FILE).read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert starts[1]["resumed"] and starts[1]["step"] == state["step"]


def test_kill_9_leaves_the_checkpoint_and_the_previous_model(
    data_home: DataHome, tiny_base: Path
) -> None:
    previous = build_tiny_lora(tiny_base, data_home.models / "trust", "trust")
    before = {p.name: p.read_bytes() for p in previous.iterdir()}
    job_id = start_job(data_home, long_run(tiny_base, checkpoint_every=2))
    wait_for(lambda: "checkpoint" in kinds(data_home, job_id))
    pid = int(read_job(job_dir(data_home, job_id))["pid"])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not list_jobs(data_home)[0].alive)
    [info] = list_jobs(data_home)
    assert info.state == "interrupted" and info.resumable
    _, state = load_checkpoint(info.path / "checkpoint")  # or the one a cut-short swap left aside
    assert state["step"] >= 2
    assert {p.name: p.read_bytes() for p in previous.iterdir()} == before
    # The kernel frees a killed process's memory before its files, so the lock can outlive the
    # moment the process stops looking alive by a little; it must not outlive the exit.
    wait_for(lambda: is_locked(data_home, "trust") is None, timeout_s=30.0)
