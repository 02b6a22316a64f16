"""`train --all`: neutral alone, then the emotions N at a time, spread over the GPUs.

The scheduling tests replace the job processes with fakes that end when told, so each step of
the chain is seen in order; the last test trains real tiny jobs in parallel processes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers.training import write_dataset
from trainer.common.home import DataHome
from trainer.jobs import chain
from trainer.jobs.chain import ChainJob, ChainView, Gpu, default_parallel
from trainer.jobs.control import JobInfo, _child_env
from trainer.training.events import JobProgress


class FakeProcess:
    """A job process that ends after `polls` polls."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.returncode: int | None = None

    def poll(self) -> int | None:
        self.polls -= 1
        if self.polls <= 0:
            self.returncode = 0
        return self.returncode


class Recorder(ChainView):
    """A view that records what the chain did, in order, and never sleeps."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.peak = 0

    def plan(self, parallel: int, reason: str) -> None:
        self.log.append(f"plan {parallel}")

    def started(self, job: ChainJob) -> None:
        self.log.append(f"start {job.emotion}" + (f" gpu {job.gpu}" if job.gpu else ""))

    def wait(self, running: Sequence[ChainJob]) -> None:
        self.peak = max(self.peak, len(running))

    def stopping(self, running: Sequence[ChainJob]) -> None:
        self.log.append("stopping " + " ".join(job.emotion for job in running))

    def ended(self, job: ChainJob, info: JobInfo) -> None:
        self.log.append(f"end {job.emotion} {info.state}")

    def refused(self, emotion: str, message: str) -> None:
        self.log.append(f"refused {emotion}")


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Job starts that make no process: each emotion ends in the state this dict gives it."""
    states: dict[str, str] = {}
    polls = iter(range(2, 1000))  # later jobs run a little longer, so the order is fixed

    def prepare_job(_home: DataHome, args: list[str]) -> Path:
        return tmp_path / args[args.index("--emotion") + 1]

    def spawn(_path: Path, gpu: str | None = None) -> FakeProcess:
        return FakeProcess(next(polls))

    def job_info(path: Path) -> JobInfo:
        state = states.get(path.name, "done")
        return JobInfo(path.name, path, path.name, JobProgress(status=state), alive=False)

    monkeypatch.setattr(chain, "prepare_job", prepare_job)
    monkeypatch.setattr(chain, "spawn", spawn)
    monkeypatch.setattr(chain, "job_info", job_info)
    monkeypatch.setattr(chain, "visible_gpus", list)
    return states


def test_neutral_runs_alone_then_the_emotions_run_n_at_a_time(
    home: DataHome, fake_jobs: dict[str, str]
) -> None:
    view = Recorder()
    assert chain.run(home, [], parallel=3, view=view) == 0
    assert view.log[:3] == ["plan 3", "start neutral", "end neutral done"]
    assert view.log[3:6] == ["start anger", "start anticipation", "start disgust"]
    assert view.peak == 3
    assert sorted(line for line in view.log if line.startswith("end")) == sorted(
        f"end {emotion} done" for emotion in chain.MODEL_EMOTIONS
    )


def test_a_job_that_does_not_finish_stops_new_starts_and_the_chain_fails(
    home: DataHome, fake_jobs: dict[str, str]
) -> None:
    fake_jobs["anger"] = "error"
    view = Recorder()
    assert chain.run(home, [], parallel=2, view=view) == 1
    started = [line for line in view.log if line.startswith("start")]
    # anger ends first, while anticipation runs; that one finishes, and nothing new starts.
    assert started == ["start neutral", "start anger", "start anticipation"]
    assert view.log[-2:] == ["end anger error", "end anticipation done"]


def test_a_failed_neutral_starts_no_emotion(home: DataHome, fake_jobs: dict[str, str]) -> None:
    fake_jobs["neutral"] = "stopped"
    view = Recorder()
    assert chain.run(home, [], parallel=8, view=view) == 1
    assert view.log == ["plan 8", "start neutral", "end neutral stopped"]


def test_jobs_are_spread_over_several_gpus(
    home: DataHome, fake_jobs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain, "visible_gpus", lambda: [Gpu("2", 80.0), Gpu("5", 80.0)])
    view = Recorder()
    assert chain.run(home, [], parallel=2, view=view) == 0
    assert view.log[:5] == [
        "plan 2",
        "start neutral gpu 2",
        "end neutral done",
        "start anger gpu 2",
        "start anticipation gpu 5",
    ]


def test_ctrl_c_stops_every_running_job_and_waits_for_them(
    home: DataHome, fake_jobs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped: list[str] = []
    monkeypatch.setattr(chain, "stop_job", lambda _home, job_id: stopped.append(job_id))

    class Interrupted(Recorder):
        def wait(self, running: Sequence[ChainJob]) -> None:
            if len(running) == 2 and not stopped:
                raise KeyboardInterrupt

    view = Interrupted()
    assert chain.run(home, [], parallel=2, view=view) == 1
    assert stopped == ["anger", "anticipation"]
    assert "stopping anger anticipation" in view.log
    assert view.log[-1].startswith("end ") and "start disgust" not in view.log


def test_an_emotion_that_cannot_start_ends_the_chain(
    home: DataHome, fake_jobs: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.common.errors import PoetstudioError

    prepare = chain.prepare_job

    def refuse_joy(data: DataHome, args: list[str]) -> Path:
        if "joy" in args:
            raise PoetstudioError("joy is already training")
        return prepare(data, args)

    monkeypatch.setattr(chain, "prepare_job", refuse_joy)
    view = Recorder()
    assert chain.run(home, [], parallel=1, view=view) == 1
    assert "refused joy" in view.log and "start sadness" not in view.log


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        ([], 1),  # the CPU or MPS: jobs would share the same cores
        ([Gpu("0", 139.8)], 8),  # an H200 holds 12; there are only 8 emotions
        ([Gpu("0", 79.2)], 6),  # an 80 GB card
        ([Gpu("0", 23.6)], 2),
        ([Gpu("0", 7.8)], 1),  # a small card still runs one
        ([Gpu("0", 23.6), Gpu("1", 23.6)], 4),
    ],
)
def test_the_default_parallel_is_one_job_per_share_of_gpu_memory(
    gpus: list[Gpu], expected: int
) -> None:
    parallel, reason = default_parallel(gpus)
    assert parallel == expected and "--parallel N overrides" in reason


def test_a_job_given_a_gpu_sees_only_that_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _child_env(tmp_path, "1")["CUDA_VISIBLE_DEVICES"] == "1"
    assert _child_env(tmp_path, None)["CUDA_VISIBLE_DEVICES"] == "0,1"


@pytest.mark.subprocess
def test_two_emotions_train_at_once_after_neutral(
    home: DataHome, tiny_base: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    write_dataset(home, counts={"neutral": 64, "trust": 64, "joy": 64})
    args = ["--base", str(tiny_base), "--max-steps", "2", "--batch-size", "4"]
    args += ["--block-size", "32", "--eval-every", "2", "--eval-blocks", "2", "--device", "cpu"]
    assert chain.run(home, args, parallel=2, emotions=["neutral", "trust", "joy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "training up to 2 emotion(s) at once after neutral (--parallel)"
    order = [line.split(":")[0] + (" start" if ": job " in line else " end") for line in lines[1:]]
    assert order[:2] == ["neutral start", "neutral end"]
    assert order[2:4] == ["trust start", "joy start"]  # both run before either ends
    assert sorted(order[4:]) == ["joy end", "trust end"]
    for emotion in ("neutral", "trust", "joy"):
        manifest = json.loads((home.models / emotion / "poetstudio.json").read_text())
        assert manifest["emotion"] == emotion
    trust = json.loads((home.models / "trust" / "poetstudio.json").read_text())
    assert trust["parent"]["emotion"] == "neutral"
