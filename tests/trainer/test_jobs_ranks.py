"""The ranks of a job on several ranks live and die with it: they die with their launcher, keep
the emotion taken while any of them lives, never outlive a failed job, and fit the machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.helpers.training import (
    config_args,
    kinds,
    start_child,
    tiny_config,
    two_rank_job_at_checkpoint,
    wait_for,
    write_dataset,
)
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import (
    latest_resumable,
    list_jobs,
    prepare_job,
    read_job,
    start_job,
    stop_job,
)
from trainer.jobs.launch import end_ranks
from trainer.jobs.locks import EmotionLock, is_locked
from trainer.jobs.watch import JobWatch
from trainer.training import distributed
from trainer.training.checkpoint import META
from trainer.training.events import EVENTS_FILE

JOB = "20250101-000000-trust-aaaa"
# A stand-in for a rank: it holds the ranks lock as a rank does, with a rank's command line.
FAKE_RANK = """
import sys, time
from pathlib import Path
from trainer.common.home import DataHome
from trainer.jobs.locks import hold_as_rank
hold_as_rank(DataHome(Path(sys.argv[1])), "trust")
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def gone(process: psutil.Process) -> bool:
    """Whether a process has ended (a zombie waiting for its parent to reap it has)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def two_rank_job_folder(home: DataHome) -> Path:
    """A job on two ranks as `train` leaves it, with no launcher (it was killed)."""
    path = home.jobs / JOB
    path.mkdir(parents=True)
    config = tiny_config(Path("base"), nproc=2).to_dict()
    job = {"id": JOB, "emotion": "trust", "args": [], "config": config, "pid": None}
    (path / "job.json").write_text(json.dumps(job))
    (path / EVENTS_FILE).write_text(json.dumps({"event": "start", "time": 1.0}) + "\n")
    return path


def checkpoint(folder: Path) -> None:
    """What marks a checkpoint as written, enough for a job to count as resumable."""
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / META).write_text("{}")


def start_fake_rank(home: DataHome, folder: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", FAKE_RANK, str(home.root), "trainer.jobs.run", str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


@pytest.mark.subprocess
def test_the_ranks_of_a_job_die_with_its_launcher_killed_by_sigkill(
    data_home: DataHome, tiny_base: Path
) -> None:
    job_id, launcher, by_rank = two_rank_job_at_checkpoint(data_home, tiny_base)
    ranks = list(by_rank.values())
    assert len(ranks) == 2
    os.kill(launcher, signal.SIGKILL)

    # A wait, not a timing claim: ranks that outlive their launcher would train on for minutes.
    wait_for(lambda: all(gone(rank) for rank in ranks), timeout_s=20.0)
    wait_for(lambda: is_locked(data_home, "trust") is None, timeout_s=30.0)
    [info] = list_jobs(data_home)
    assert info.state == "interrupted" and info.resumable
    assert latest_resumable(data_home, "trust").id == job_id
    assert "done" not in kinds(data_home, job_id)
    assert not (data_home.models / "trust").exists()  # no orphan published


def test_a_rank_that_outlived_its_launcher_keeps_the_emotion_taken_until_it_dies(
    home: DataHome,
) -> None:
    folder = two_rank_job_folder(home)
    checkpoint(folder)  # what makes the job resumable once its ranks are gone
    launcher = EmotionLock(home, "trust")
    launcher.acquire(JOB)
    rank = start_fake_rank(home, folder)
    launcher.release()  # the launcher is gone; its rank is not
    try:
        assert is_locked(home, "trust") == JOB
        with pytest.raises(PoetstudioError, match=f"already training \\(job {JOB}\\)"):
            EmotionLock(home, "trust").acquire("20250101-000001-trust-bbbb")
        with pytest.raises(PoetstudioError, match=f"already training \\(job {JOB}\\)"):
            prepare_job(home, ["--emotion", "trust", "--resume"])
        [info] = list_jobs(home)
        assert info.alive and info.state == "running" and not info.resumable
        assert JobWatch(folder).poll().alive
        # `jobs stop` ends ranks whose launcher is gone.
        assert stop_job(home, JOB, wait_s=10.0)
        assert rank.wait(timeout=10.0) == -signal.SIGKILL
    finally:
        rank.kill()
        rank.wait()
    assert is_locked(home, "trust") is None
    [info] = list_jobs(home)
    assert info.state == "interrupted" and info.resumable
    assert not stop_job(home, JOB)


def test_the_launcher_kills_a_rank_that_ignores_sigterm_before_it_ends(tmp_path: Path) -> None:
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    sleep = "import time; time.sleep(600)"
    rank = start_child(sleep, "trainer.jobs.run", str(tmp_path), setup=stubborn)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert end_ranks() == [rank.pid]
        assert not psutil.pid_exists(rank.pid)  # killed and reaped by the time end_ranks returns
        assert bystander.poll() is None  # only ranks are the launcher's to end
    finally:
        for process in (rank, bystander):
            process.kill()
            process.wait()


def test_a_rank_whose_launcher_is_gone_dies_at_once(tmp_path: Path) -> None:
    # The rank is told of a launcher that is not its parent: as if it had died before the rank
    # could arm its parent-death signal.
    code = (
        "from trainer.training import distributed; distributed.bind_to_launcher(); "
        "print('survived', flush=True)"
    )
    env = {**os.environ, distributed.LAUNCHER_PID: "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == -signal.SIGKILL and "survived" not in result.stdout
    env[distributed.LAUNCHER_PID] = str(os.getpid())
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "survived\n"


def test_nproc_is_bounded_by_the_cpu_cores_with_a_one_line_error(
    data_home: DataHome, tiny_base: Path
) -> None:
    cores = distributed.usable_cores()
    too_many = config_args(tiny_config(tiny_base, nproc=cores + 1, batch_size=64, device="cpu"))
    with pytest.raises(PoetstudioError) as caught:
        start_job(data_home, too_many)
    message = str(caught.value)
    assert message == (
        f"--nproc {cores + 1} is more ranks than the {cores} CPU cores this machine gives "
        f"poetstudio; use at most --nproc {cores}, one rank per core"
    )
    assert not list(data_home.jobs.glob("2*"))  # no job folder was made
    # A run over several machines is prepared for torchrun, which sets the ranks per machine.
    folder = prepare_job(data_home, too_many, one_machine=False)
    assert read_job(folder)["config"]["nproc"] == cores + 1
    # Resuming with more ranks than cores is refused too.
    checkpoint(folder)
    resume = ["--emotion", "trust", "--resume", "--nproc", "64", "--device", "cpu"]
    with pytest.raises(PoetstudioError, match="--nproc 64 is more ranks than the"):
        prepare_job(data_home, resume)


def test_more_ranks_than_gpus_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    distributed.check_ranks("cuda", 2)
    with pytest.raises(PoetstudioError, match="--nproc 3 needs 3 GPUs, one per rank, but"):
        distributed.check_ranks("cuda", 3)
    with pytest.raises(PoetstudioError, match="runs on CUDA GPUs or the CPU, not mps"):
        distributed.check_ranks("mps", 2)


# A launcher and its rank, where the platform has no parent-death signal (macOS): the rank
# watches its parent instead.
WATCHING_RANK = """
import sys, time
sys.platform = "darwin"
from trainer.training import distributed
distributed.bind_to_launcher()
print("bound", flush=True)
time.sleep(600)
"""
LAUNCHER = """
import os, subprocess, sys, time
env = {**os.environ, "POETSTUDIO_LAUNCHER_PID": str(os.getpid())}
rank = subprocess.Popen([sys.executable, "-c", sys.argv[1]], env=env)
print(rank.pid, flush=True)
time.sleep(600)
"""


def test_where_there_is_no_parent_death_signal_a_rank_watches_its_launcher() -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, WATCHING_RANK], stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None
        rank = psutil.Process(int(launcher.stdout.readline()))
        assert launcher.stdout.readline() == "bound\n"
        assert rank.num_threads() == 2  # its main thread, and the one watching the launcher
        launcher.kill()
        launcher.wait()
        wait_for(lambda: gone(rank), timeout_s=20.0)
    finally:
        launcher.kill()
        launcher.wait()
