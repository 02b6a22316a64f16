"""What one look at the jobs costs the studio: reading every job afresh (`list_jobs`) against
keeping a `JobWatcher` that reads only what changed.

Makes a data home with finished jobs of `--steps` step events each and one live job (a sleeping
process whose command line names its folder, as the job process's does) that gains one step
between looks, as the studio's one-second poll sees it. Reports the median time of a look.

    .venv/bin/python benchmarks/bench_job_watch.py [--jobs 20] [--steps 2000] [--looks 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.common.home import DataHome  # noqa: E402
from trainer.jobs.control import list_jobs  # noqa: E402
from trainer.jobs.watch import JobWatcher  # noqa: E402


def event(kind: str, **data: object) -> str:
    return json.dumps({"event": kind, "time": time.time(), **data}) + "\n"


def step_events(steps: int) -> str:
    return "".join(
        event("step", step=s, epoch=s / 100, loss=3.0, smooth_loss=3.0, lr=1e-4, tokens_per_s=900)
        for s in range(1, steps + 1)
    )


def make_job(home: DataHome, job_id: str, pid: int | None, events: str) -> Path:
    path = home.jobs / job_id
    path.mkdir(parents=True)
    emotion = job_id.split("-")[2]
    (path / "job.json").write_text(json.dumps({"id": job_id, "emotion": emotion, "pid": pid}))
    (path / "events.jsonl").write_text(events)
    return path


def median_look_s(look: Callable[[], object], live: Path, looks: int, step: int) -> float:
    """The median seconds of `look`, the live job gaining a step before each."""
    times = []
    for index in range(looks):
        with open(live / "events.jsonl", "a") as handle:
            handle.write(event("step", step=step + index, loss=3.0, smooth_loss=3.0))
        start = time.perf_counter()
        look()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="finished jobs")
    parser.add_argument("--steps", type=int, default=2000, help="step events per job")
    parser.add_argument("--looks", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = DataHome(Path(scratch))
        finished = event("start", total_steps=args.steps) + step_events(args.steps) + event("done")
        for index in range(args.jobs):
            make_job(home, f"20250101-{index:06d}-joy-{index:04x}", None, finished)
        live_path = home.jobs / "20260101-000000-fear-ffff"
        sleep = [sys.executable, "-c", "import time; time.sleep(600)", str(live_path)]
        sleeper = subprocess.Popen(sleep)
        try:
            live = make_job(home, live_path.name, sleeper.pid, event("start", total_steps=10**6))
            watcher = JobWatcher(home)
            first = time.perf_counter()
            watcher.poll()
            first_s = time.perf_counter() - first
            fresh = median_look_s(lambda: list_jobs(home), live, args.looks, 1)
            watched = median_look_s(watcher.poll, live, args.looks, 1 + args.looks)
        finally:
            sleeper.kill()
            sleeper.wait()
    print(f"{args.jobs} finished jobs of {args.steps} steps, 1 live job; median of {args.looks}")
    print(f"  list_jobs (every file from byte 0):  {fresh * 1000:8.2f} ms")
    print(f"  JobWatcher.poll (what changed):      {watched * 1000:8.2f} ms")
    print(f"  JobWatcher's first poll (reads all): {first_s * 1000:8.2f} ms")
    print(f"  ratio: {fresh / watched:.0f}x")


if __name__ == "__main__":
    main()
