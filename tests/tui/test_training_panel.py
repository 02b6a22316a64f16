"""Pilot tests of the training panel's buttons: Train starts a job, a card's Stop stops it.

The jobs are fakes: a small process that writes job events like a training process would, and
answers SIGTERM as one does (a checkpoint, then `stopped`), so the tests need no torch.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.training import start_child

# The fixtures are shared with the app's Pilot tests: imported so that pytest finds them here.
from tests.tui.test_app import (  # noqa: F401
    SIZE,
    make_app,
    messages,
    poll_jobs,
    settle,
    studio_home,
    tiny_models,
)
from trainer.common.home import DataHome
from trainer.training.events import EVENTS_FILE

# A stand-in for `python -m trainer.jobs.run JOB_DIR`: its command line names the folder.
FAKE_RUN = """
import json, signal, sys, time
events = sys.argv[1] + "/events.jsonl"

def emit(kind, **data):
    with open(events, "a") as handle:
        handle.write(json.dumps({"event": kind, "time": time.time(), **data}) + "\\n")

def stop(*_):
    emit("checkpoint", step=3, path=sys.argv[1] + "/checkpoint")
    emit("stopped", step=3, reason="stop requested; resume with --resume")
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
emit("start", emotion=sys.argv[2], method="lora", device="cpu", total_steps=50)
for step, loss in ((1, 5.0), (2, 4.6), (3, 4.3)):
    emit("step", step=step, epoch=0.1, loss=loss, smooth_loss=loss, tokens_per_s=100.0)
emit("eval", step=3, val_loss=4.4, val_ppl=81.5, best=True)
time.sleep(60)
"""


class FakeJobs:
    """`start_job` for the tests: records its arguments and starts a FAKE_RUN process."""

    def __init__(self) -> None:
        self.args: list[list[str]] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def start_job(self, home: DataHome, args: list[str]) -> str:
        self.args.append(list(args))
        emotion = args[args.index("--emotion") + 1]
        job_id = f"20250101-12000{len(self.args)}-{emotion}-ab12"
        path = home.jobs / job_id
        path.mkdir(parents=True)
        process = start_child(FAKE_RUN, str(path), emotion)
        self.processes.append(process)
        job = {"id": job_id, "emotion": emotion, "args": args, "pid": process.pid}
        (path / "job.json").write_text(json.dumps(job))
        return job_id

    def end(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def fake_jobs(monkeypatch: pytest.MonkeyPatch):
    import trainer.jobs.control

    jobs = FakeJobs()
    monkeypatch.setattr(trainer.jobs.control, "start_job", jobs.start_job)
    yield jobs
    jobs.end()


async def wait_until(app, pilot, check, timeout_s: float = 20.0) -> None:
    """Poll the jobs until `check()` holds (the fake process needs a moment to start)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        poll_jobs(app)
        await settle(app, pilot)
        await pilot.pause(0.05)


def card_text(app) -> str:
    from studio.tui.widgets.job_card import JobCard

    cards = app.query(JobCard)
    return str(cards.first().query_one(".job-summary").render()) if cards else ""


async def start_training(app, pilot, emotion: str) -> None:
    """Pick `emotion` in the train form and press Train."""
    await pilot.press("f2")
    await settle(app, pilot)
    app.query_one("#train-emotion").value = emotion
    await pilot.click("#train-start")
    await settle(app, pilot)


async def test_the_train_button_starts_a_job_for_the_picked_emotion_and_charts_it(
    studio_home,  # noqa: F811
    tmp_path,
    fake_jobs,
):
    from studio.tui.widgets.job_card import JobCard
    from studio.tui.widgets.loss_chart import LossChart

    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert not app.query(LossChart)  # no job to chart yet
        await start_training(app, pilot, "fear")
        assert fake_jobs.args == [["--emotion", "fear"]]
        [job_id] = [p.name for p in studio_home.jobs.iterdir()]
        assert f"Training fear in the background: job {job_id}" in messages(app)
        await wait_until(app, pilot, lambda: "val ppl" in card_text(app))
        card = app.query_one(JobCard)
        assert card.job_id == job_id and "running" in card_text(app)
        assert card.query_one(".job-stop").display
        chart = app.query_one(LossChart)
        assert chart.display and chart.progress.curve == [(1, 5.0), (2, 4.6), (3, 4.3)]
        assert chart.progress.evals == [(3, 81.5)]


async def test_the_stop_button_stops_the_job_which_checkpoints_and_ends_stopped(
    studio_home,  # noqa: F811
    tmp_path,
    fake_jobs,
):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await start_training(app, pilot, "joy")
        await wait_until(app, pilot, lambda: "step 3/50" in card_text(app))
        [job_id] = [p.name for p in studio_home.jobs.iterdir()]
        await pilot.click(f"#job-{job_id} .job-stop")
        await settle(app, pilot)
        assert f"Stopping job {job_id} (it saves a checkpoint)" in messages(app)
        await wait_until(app, pilot, lambda: "stopped" in card_text(app))
        assert fake_jobs.processes[0].wait(timeout=10) == 0
        kinds = [json.loads(x)["event"] for x in (studio_home.jobs / job_id / EVENTS_FILE).open()]
        assert kinds[-2:] == ["checkpoint", "stopped"]
        assert not app.query_one(f"#job-{job_id} .job-stop").display
        assert "stop requested" in card_text(app)


async def test_the_train_button_says_in_one_line_why_a_job_cannot_start(
    studio_home,  # noqa: F811
    tmp_path,
):
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await start_training(app, pilot, "trust")
        [error] = [n for n in app._notifications if n.title == "Cannot train"]
        assert error.severity == "error" and "\n" not in error.message
        assert "dataset" in error.message
        assert not list(studio_home.jobs.glob("*/job.json"))


async def test_clicking_a_job_card_charts_that_job(
    studio_home: DataHome,  # noqa: F811
    tmp_path: Path,
):
    from studio.tui.widgets.loss_chart import LossChart

    for job_id, loss in (("20250101-120000-fear-ab12", 5.0), ("20250102-120000-joy-cd34", 3.0)):
        path = studio_home.jobs / job_id
        path.mkdir(parents=True)
        emotion = job_id.split("-")[2]
        (path / "job.json").write_text(json.dumps({"id": job_id, "emotion": emotion}))
        lines = [
            {"event": "start", "time": 1.0, "total_steps": 2},
            {"event": "step", "time": 2.0, "step": 1, "loss": loss, "smooth_loss": loss},
        ]
        (path / EVENTS_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    app = make_app(studio_home, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f2")
        await settle(app, pilot)
        chart = app.query_one(LossChart)
        assert chart.progress.curve == [(1, 3.0)]  # the newest job
        await pilot.click("#job-20250101-120000-fear-ab12 .job-summary")
        await settle(app, pilot)
        assert chart.progress.curve == [(1, 5.0)]
