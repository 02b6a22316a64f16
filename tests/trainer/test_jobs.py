"""Background training jobs as real processes (detach and follow, signals, the lock, kill -9), and
the watcher that keeps a list of them current by reading only what changed."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.models import build_tiny_lora
from tests.helpers.training import (
    config_args,
    start_child,
    tiny_config,
    wait_for,
    write_dataset,
)
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.jobs.control import job_dir, list_jobs, read_job, start_job, stop_job
from trainer.jobs.locks import is_locked
from trainer.jobs.watch import JobWatch, JobWatcher, follow
from trainer.training.checkpoint import load_checkpoint
from trainer.training.events import EVENTS_FILE, EventReader, JobProgress


def kinds(home: DataHome, job_id: str) -> list[str]:
    path = job_dir(home, job_id) / EVENTS_FILE
    if not path.exists():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines()]


def resumed_kinds(home: DataHome, job_id: str) -> list[str]:
    """The event kinds written since the job's latest start."""
    seen = kinds(home, job_id)
    latest = len(seen) - 1 - seen[::-1].index("start")
    return seen[latest + 1 :]


def dump_log(home: DataHome, job_id: str) -> str:
    return (job_dir(home, job_id) / "log.txt").read_text()


@pytest.fixture
def data_home(home: DataHome) -> DataHome:
    write_dataset(home)
    return home


def long_run(base: Path, **overrides: object) -> list[str]:
    values = {"max_steps": 5000, "eval_every": 5000, "checkpoint_every": 5000, **overrides}
    return config_args(tiny_config(base, **values))


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
    # Step events are written in bursts (a few a second), so wait for any since the resume.
    wait_for(lambda: "step" in resumed_kinds(data_home, job_id))
    os.kill(int(read_job(info.path)["pid"]), signal.SIGINT)
    wait_for(lambda: kinds(data_home, job_id)[-1] == "stopped")
    events = [json.loads(x) for x in (info.path / EVENTS_FILE).read_text().splitlines()]
    starts = [e for e in events if e["event"] == "start"]
    assert starts[1]["resumed"] and starts[1]["step"] == state["step"]


@pytest.mark.subprocess
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


def job_folder(home: DataHome, job_id: str, pid: int | None = None) -> Path:
    """A job folder as `train` leaves it, with no process (or `pid`) and no events yet."""
    path = home.jobs / job_id
    path.mkdir(parents=True)
    emotion = job_id.split("-")[2]
    job = {"id": job_id, "emotion": emotion, "args": ["--emotion", emotion], "pid": pid}
    (path / "job.json").write_text(json.dumps(job))
    return path


def event_line(kind: str, **data: object) -> str:
    return json.dumps({"event": kind, "time": 1.0, **data}) + "\n"


def steps(*losses: float, start: int = 1) -> str:
    return "".join(
        event_line("step", step=start + i, loss=x, smooth_loss=x) for i, x in enumerate(losses)
    )


FEAR = "20250101-120000-fear-ab12"


def test_the_watcher_reads_only_the_events_written_since_its_last_poll(home: DataHome) -> None:
    events = job_folder(home, FEAR) / EVENTS_FILE
    events.write_text(event_line("start", emotion="fear", total_steps=9) + steps(5.0, 4.0))
    watch = JobWatch(home.jobs / FEAR)
    assert watch.poll().progress.step == 2
    # Damage the lines already read, in place: a reader that went back to byte 0 would see it.
    with open(events, "r+b") as handle:
        handle.write(b"#" * 20)
    with open(events, "a") as handle:
        handle.write(steps(3.0, start=3))
    progress = watch.poll().progress
    assert progress.step == 3 and progress.skipped == 0
    assert progress.curve == [(1, 5.0), (2, 4.0), (3, 3.0)]


def test_a_half_written_last_line_waits_for_the_next_poll(home: DataHome) -> None:
    events = job_folder(home, FEAR) / EVENTS_FILE
    line = steps(5.0)
    events.write_text(event_line("start", total_steps=9) + line[:10])
    watch = JobWatch(home.jobs / FEAR)
    assert watch.poll().progress.step == 0
    with open(events, "a") as handle:
        handle.write(line[10:])
    progress = watch.poll().progress
    assert progress.step == 1 and progress.skipped == 0


def test_a_truncated_or_replaced_events_file_is_read_again_from_its_start(home: DataHome) -> None:
    events = job_folder(home, FEAR) / EVENTS_FILE
    events.write_text(event_line("start", total_steps=9) + steps(5.0, 4.0, 3.5))
    watch = JobWatch(home.jobs / FEAR)
    assert watch.poll().progress.step == 3
    events.write_text(event_line("start", total_steps=4) + steps(6.0))  # truncated, then rewritten
    progress = watch.poll().progress
    assert (progress.step, progress.total_steps, progress.curve) == (1, 4, [(1, 6.0)])
    fresh = events.with_name("events.new")
    fresh.write_text(event_line("start", total_steps=5) + steps(7.0, 6.5, 6.0, 5.5, 5.0))
    fresh.replace(events)  # a new file, longer than the one read
    progress = watch.poll().progress
    assert (progress.step, progress.total_steps, len(progress.curve)) == (5, 5, 5)


def test_a_finished_job_is_not_read_again_until_its_files_change(
    home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    import trainer.jobs.watch

    events = job_folder(home, FEAR) / EVENTS_FILE
    events.write_text(event_line("start", total_steps=2) + steps(5.0, 4.0) + event_line("done"))
    watcher = JobWatcher(home)
    [done] = watcher.poll()
    assert done.state == "done" and not done.alive
    looks: list[str] = []
    real_alive, real_read = trainer.jobs.watch.job_alive, trainer.jobs.watch.EventReader.batches

    def job_alive(*_args: object) -> bool:
        looks.append("pid")
        return False

    def batches(reader: EventReader, **options: bool) -> Iterator[list[dict[str, Any]]]:
        looks.append("events")
        return real_read(reader, **options)

    monkeypatch.setattr(trainer.jobs.watch, "job_alive", job_alive)
    monkeypatch.setattr(trainer.jobs.watch.EventReader, "batches", batches)
    for _ in range(3):
        assert watcher.poll() == [done]
    assert looks == []
    # A resume writes job.json and appends to the events: the job is read again.
    with open(events, "a") as handle:
        handle.write(event_line("start", step=2, total_steps=4) + steps(3.5, start=3))
    [resumed] = watcher.poll()
    assert looks == ["pid", "events"]
    assert resumed.progress.step == 3 and resumed.state == "interrupted"
    assert real_alive(resumed.path, {"pid": None}) is False


@pytest.mark.subprocess
def test_the_watcher_follows_a_process_until_it_is_gone(home: DataHome) -> None:
    path = home.jobs / FEAR
    sleeper = start_child("import time; time.sleep(60)", str(path))
    try:
        job_folder(home, FEAR, pid=sleeper.pid)
        (path / EVENTS_FILE).write_text(event_line("start", total_steps=9) + steps(5.0))
        watcher = JobWatcher(home)
        [running] = watcher.poll()
        assert running.alive and running.state == "running"
    finally:
        sleeper.kill()
        sleeper.wait()
    [gone] = watcher.poll()
    assert not gone.alive and gone.state == "interrupted"
    assert running.state == "running"  # an earlier listing is a snapshot: later polls leave it


def test_the_watcher_lists_jobs_newest_first_with_broken_ones_and_drops_deleted_ones(
    home: DataHome,
) -> None:
    older = job_folder(home, "20240101-120000-joy-0001")
    job_folder(home, FEAR)
    broken = home.jobs / "20250202-120000-trust-0002"
    broken.mkdir()
    (broken / "job.json").write_text("{not json")
    watcher = JobWatcher(home)
    jobs = watcher.poll()
    assert [j.id for j in jobs] == [broken.name, FEAR, older.name]
    assert jobs[0].state == "broken" and jobs[0].emotion == "trust" and jobs[0].progress.message
    (broken / "job.json").write_text(json.dumps({"id": broken.name, "emotion": "trust"}))
    repaired = watcher.poll()[0]  # the repaired file is read again: a job that never ran
    assert repaired.state == "interrupted" and not repaired.progress.message
    for item in older.iterdir():
        item.unlink()
    older.rmdir()
    assert [j.id for j in watcher.poll()] == [broken.name, FEAR]


def test_the_curve_keeps_each_step_and_evaluation_and_a_resume_replaces_the_later_steps(
    home: DataHome,
) -> None:
    events = job_folder(home, FEAR) / EVENTS_FILE
    events.write_text(
        event_line("start", total_steps=6)
        + steps(5.0, 4.5, 4.0, 3.8)
        + event_line("eval", step=2, val_loss=4.2, val_ppl=66.7)
        + event_line("eval", step=4, val_loss=4.0, val_ppl=54.6)
        + event_line("stopped", step=4)
        # Resumed from the checkpoint of step 2: steps 3 and 4 are trained again.
        + event_line("start", step=2, total_steps=6)
        + steps(3.9, start=3)
    )
    progress = JobWatch(home.jobs / FEAR).poll().progress
    assert progress.curve == [(1, 5.0), (2, 4.5), (3, 3.9)]
    assert progress.evals == [(2, 66.7)]


LONG_RUN = 130_000


def long_events(path: Path, steps_total: int = LONG_RUN, eval_every: int = 100) -> None:
    """An events file of a long run, written as the trainer writes it (about 20 MB): stopped at
    half way, resumed, then done."""
    half = steps_total // 2
    with open(path, "w") as handle:
        handle.write(event_line("start", emotion="fear", total_steps=steps_total, step=0))
        for step in range(1, steps_total + 1):
            loss = 5.0 - step / steps_total
            handle.write(
                event_line(
                    "step",
                    step=step,
                    epoch=step / 1000,
                    loss=loss,
                    smooth_loss=loss,
                    lr=1e-4,
                    tokens_per_s=1234.5,
                    mfu=0.25,
                )
            )
            if step % eval_every == 0:
                ppl = 2.0 + step / LONG_RUN if step != 3000 else 1.5  # the best is early on
                handle.write(event_line("eval", step=step, val_loss=1.0, val_ppl=ppl, best=True))
            if step == half:
                handle.write(event_line("stopped", step=step, reason="stop requested"))
                handle.write(
                    event_line("start", emotion="fear", total_steps=steps_total, step=step)
                )
        handle.write(event_line("done", step=steps_total, model_dir="models/fear"))


def test_a_long_events_file_is_listed_and_followed_in_bounded_memory(home: DataHome) -> None:
    import tracemalloc

    from trainer.training.events import MAX_POINTS, read_progress

    events = job_folder(home, FEAR) / EVENTS_FILE
    long_events(events)
    size = events.stat().st_size
    assert size > 18_000_000

    tracemalloc.start()
    try:
        listed = read_progress(events)  # what `poetstudio jobs` reads
        _, listing_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        watch = JobWatch(events.parent)
        followed = watch.poll().progress  # what `jobs follow` and the studio read first
        _, follow_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading it all at once held the whole file and every event: hundreds of MB.
    assert listing_peak < 4_000_000 and follow_peak < 4_000_000, (listing_peak, follow_peak)
    for progress in (listed, followed):
        assert progress.status == "done" and progress.step == LONG_RUN
        assert progress.total_steps == LONG_RUN and progress.best_val_ppl == 1.5
        assert progress.loss == pytest.approx(4.0) and progress.skipped == 0
        assert progress.curve[-1] == (LONG_RUN, pytest.approx(4.0)) and progress.curve[0][0] < 100
        assert len(progress.curve) <= MAX_POINTS and len(progress.evals) <= MAX_POINTS
        assert progress.evals[-1] == (LONG_RUN, pytest.approx(3.0))
    # Then only what is appended is read.
    before = watch._reader.bytes_read
    with open(events, "a") as handle:
        handle.write(
            event_line("start", total_steps=LONG_RUN + 1, step=LONG_RUN)
            + steps(3.9, start=LONG_RUN + 1)
        )
    assert watch.poll().progress.step == LONG_RUN + 1
    assert watch._reader.bytes_read - before < 1000


def test_a_curve_keeps_its_first_and_newest_points_and_thins_evenly_past_its_bound() -> None:
    from trainer.training.events import MAX_POINTS, add_point

    points: list[tuple[int, float]] = []
    stride = 1
    for step in range(1, 50_001):
        stride = add_point(points, (step, float(step)), stride)
        assert len(points) <= MAX_POINTS
    assert points[0] == (1, 1.0) and points[-1] == (50_000, 50_000.0)
    gaps = [b[0] - a[0] for a, b in zip(points, points[1:-1], strict=False)]
    assert len(points) > MAX_POINTS // 2 and max(gaps) <= 2 * stride  # evenly over the run
    # Steps that do not spread out are cut to the newest.
    same: list[tuple[int, float]] = []
    for index in range(MAX_POINTS + 10):
        add_point(same, (7, float(index)), 1)
    assert len(same) <= MAX_POINTS and same[-1] == (7, float(MAX_POINTS + 9))
