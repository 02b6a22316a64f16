"""What `poetstudio jobs` and `jobs follow` cost on a long events file: time and peak memory.

Writes a job whose events.jsonl is about `--mb` MB of step events (an eval every 100 steps), then
measures, each in a fresh process, `read_progress` (the listing) and the first `JobWatch.poll`
(`jobs follow` and the studio): wall seconds and peak RSS (ru_maxrss). Run it on two checkouts
side by side to compare them:

    PYTHONPATH=. .venv/bin/python benchmarks/bench_long_events.py [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOB_ID = "20250101-000000-fear-ab12"

MEASURE = """
import resource, sys, time
from pathlib import Path
from trainer.jobs.watch import JobWatch
from trainer.training.events import read_progress
folder = Path(sys.argv[2])
start = time.perf_counter()
if sys.argv[1] == "listing":
    progress = read_progress(folder / "events.jsonl")
else:
    progress = JobWatch(folder).poll().progress
took = time.perf_counter() - start
assert progress.status == "done", progress.status
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_events(path: Path, megabytes: int) -> int:
    """A long run's events, as the trainer writes them; returns the number of steps."""
    step = 0
    with open(path, "w") as handle:
        handle.write(json.dumps({"event": "start", "time": 1.0, "total_steps": 0}) + "\n")
        while handle.tell() < megabytes * 1_000_000:
            lines = []
            for _ in range(1000):
                step += 1
                step_event = {"event": "step", "time": 1.0 + step, "step": step}
                step_event.update(epoch=step / 1000, loss=3.0, smooth_loss=3.0, lr=1e-4)
                step_event.update(tokens=4096, tokens_per_s=51234.5, mfu=0.31)
                lines.append(json.dumps(step_event) + "\n")
                if step % 100 == 0:
                    lines.append(
                        json.dumps(
                            {
                                "event": "eval",
                                "time": 1.0,
                                "step": step,
                                "val_loss": 1.0,
                                "val_ppl": 2.7,
                                "best": False,
                            }
                        )
                        + "\n"
                    )
            handle.write("".join(lines))
        handle.write(json.dumps({"event": "done", "time": 2.0, "step": step}) + "\n")
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the events file")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "jobs" / JOB_ID
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps({"id": JOB_ID, "emotion": "fear"}))
        steps = write_events(folder / "events.jsonl", args.mb)
        size = (folder / "events.jsonl").stat().st_size
        print(f"events.jsonl: {size / 1e6:.0f} MB, {steps} steps; median of {args.runs} runs")
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
        for what in ("listing", "follow"):
            seconds, peaks = [], []
            for _ in range(args.runs):
                out = subprocess.run(
                    [sys.executable, "-c", MEASURE, what, str(folder)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                seconds.append(float(out[0]))
                peaks.append(int(out[1]) / 1024)
            print(
                f"  {what:8s} {statistics.median(seconds):7.2f} s   "
                f"peak RSS {statistics.median(peaks):7.0f} MiB"
            )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
