"""How long the studio takes to handle a key while K candidate lines stream, line by line.

Runs the real studio headless (Textual's test driver) on the bundled models, switches to line by
line, and while K candidates stream posts a key the candidate list handles (down/up: move the
highlight), timing each from the moment it is posted to the moment its handler runs. The same
keys with nothing streaming are timed in the same rounds, side by side. Medians and maxima;
target: a key handled within 100 ms while candidates stream.

The studio runs on a scratch data home that links the real one's bases and weight cache (read
only), so the user's settings and draft are never touched.

Run:  .venv/bin/python benchmarks/bench_cowrite_keys.py [--home DATA_HOME] [--rounds 5]
      [--keys 8] [--candidates 3] [--emotion joy]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from studio.core.generation.machine import cpu_name  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

SIZE = (120, 36)
GAP_S = 0.05  # between two keys: a fast typist's pace


def scratch_home(real: DataHome, folder: Path, emotion: str, candidates: int) -> DataHome:
    """A data home that shares `real`'s bases and weight cache and opens line by line."""
    home = DataHome(folder).ensure()
    for name in ("bases", "cache"):
        target = home.root / name
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        if not target.exists():
            target.symlink_to(real.root / name, target_is_directory=True)
    settings = {"mode": "lines", "candidates": candidates, "emotion": emotion}
    home.settings_file.write_text(json.dumps(settings))
    return home


async def idle(app) -> None:
    """Wait until no worker runs (a model load, a run of candidates)."""
    while any(worker.is_running for worker in app.workers):
        await asyncio.sleep(0.01)


async def press_timed(app, handled: list[float], key: str) -> float:
    """Post `key` as the terminal driver would and return seconds until its handler ran."""
    count = len(handled)
    posted = time.perf_counter()
    app.post_message(events.Key(key, None))
    while len(handled) == count:
        await asyncio.sleep(0.001)
    return handled[-1] - posted


async def measure(home: DataHome, rounds: int, keys: int) -> dict[str, list[float]]:
    from studio.tui.app import PoetStudioApp
    from studio.tui.widgets.candidate_list import CandidateList

    handled: list[float] = []
    for name in ("action_cursor_down", "action_cursor_up"):
        original = getattr(CandidateList, name)

        def timed(self, _original=original) -> None:
            handled.append(time.perf_counter())
            _original(self)

        setattr(CandidateList, name, timed)

    streaming: list[float] = []
    quiet: list[float] = []
    app = PoetStudioApp(home, device="cpu")
    async with app.run_test(size=SIZE):
        await asyncio.sleep(0.5)
        await idle(app)
        candidates = app.query_one(CandidateList)
        for _ in range(rounds):
            app.regenerate_lines()
            candidates.focus()
            while not any(candidates.texts):
                await asyncio.sleep(0.005)
            for index in range(keys):
                if not candidates.streaming:
                    break
                streaming.append(await press_timed(app, handled, ("down", "up")[index % 2]))
                await asyncio.sleep(GAP_S)
            await idle(app)
            for index in range(keys):
                quiet.append(await press_timed(app, handled, ("down", "up")[index % 2]))
                await asyncio.sleep(GAP_S)
    return {"streaming": streaming, "idle": quiet}


def summary(values: list[float]) -> str:
    if not values:
        return "no keys timed"
    median = statistics.median(values) * 1000
    return f"median {median:.1f} ms, max {max(values) * 1000:.1f} ms over {len(values)} keys"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="the data home with the converted base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keys", type=int, default=8, help="keys timed per round")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--emotion", default="joy")
    args = parser.parse_args()
    real = DataHome(Path(args.home)) if args.home else resolve_home()
    with tempfile.TemporaryDirectory() as scratch:
        home = scratch_home(real, Path(scratch) / "home", args.emotion, args.candidates)
        times = asyncio.run(measure(home, args.rounds, args.keys))
    print(f"CPU: {cpu_name()}; K = {args.candidates}, {args.emotion}, {args.rounds} rounds")
    print(f"key handled while candidates stream: {summary(times['streaming'])} (target 100 ms)")
    print(f"key handled with nothing streaming:  {summary(times['idle'])}")


if __name__ == "__main__":
    main()
