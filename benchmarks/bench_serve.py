"""How fast `poetstudio serve` paints the studio in a browser, how fast a closed tab's studio
exits, and what each browser session costs in memory.

Starts `poetstudio serve` on a free port and a headless chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium), then for each run opens the printed URL in the tab and
times, from the start of the navigation (the request):
  - the page's first contentful paint (the "Starting the studio…" page),
  - when the page opened its websocket (its session's studio starts then), and
  - the studio's first full frame in the browser: the first terminal frame after which the
    footer (the last widget drawn) is on screen; the model loads after it.
Each run then closes the tab (navigates away) and times until its studio process has exited.
Runs never overlap.

Memory, with --tabs N (default 3): N tabs open at once, each writes one poem (so the weights it
decodes with are resident), then every studio's RSS, USS (what that process alone holds) and PSS
(its own pages plus its share of pages shared with others) is read (psutil memory_full_info).
The PSS each extra session adds is (total PSS of N studios - total of 1) / (N - 1). This is
measured twice in one run, side by side: with the weights shared (each studio maps the data
home's cached weights file) and with every studio holding its own copy (the cache made
unwritable, the loader's fallback).

    .venv/bin/python benchmarks/bench_serve.py [--runs 5] [--tabs 3] [--home DIR]
    .venv/bin/python benchmarks/bench_serve.py --loads 3 --home DIR

--loads N times instead how long a fresh process takes to load the neutral model on CPU (the
studio's "ready"), with the cached mapped weights against an own converted copy, alternating,
N times each.

Without --home the sessions use tiny test models; with it they use the bundled models on the
converted base of that data home (linked read-only into a temporary home).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.serving import (  # noqa: E402
    BrowserTerminal,
    build_tiny_home,
    new_tab,
    serving,
    start_browser,
)

FOOTER = "palette"  # the footer's command-palette hint: drawn once the whole screen is up
LOADED_S = 300.0
FIRST_LINE = "The lamps are out along the quay"


def studio_processes(server: psutil.Process) -> list[psutil.Process]:
    """The studio processes the server started, one per session."""
    return [p for p in server.children(recursive=True) if "studio.cli" in " ".join(_command(p))]


def _command(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone, or a zombie not yet reaped: no longer a session
        return []


def wait_for_no_studio(server: psutil.Process, limit: float = 90.0) -> None:
    deadline = time.monotonic() + limit
    while studio_processes(server):
        if time.monotonic() > deadline:
            raise RuntimeError("the last session's studio did not quit")
        time.sleep(0.1)


def one_run(driver: Any, url: str, server: psutil.Process) -> dict[str, float]:
    """Open `url` once; the paint times in ms, then close the tab and time its studio's exit."""
    terminal = BrowserTerminal(driver)
    terminal.open(url)
    terminal.wait_for(FOOTER, 60)
    frame_ms = terminal.first_showing(FOOTER)
    assert frame_ms is not None
    paint, socket_ms = driver.execute_script(
        "const p = performance.getEntriesByName('first-contentful-paint')[0];"
        "return [p ? p.startTime : null, window.__socketAt];"
    )
    # The status bar names the model once it is ready: "ready │ neutral · user lora │ cpu".
    terminal.wait_for(" lora │ ", LOADED_S)
    closed = time.perf_counter()
    driver.get("about:blank")  # closes the session's websocket
    wait_for_no_studio(server)
    return {
        "paint_ms": float(paint) if paint is not None else float("nan"),
        "socket_ms": float(socket_ms),
        "frame_ms": frame_ms,
        "exit_ms": (time.perf_counter() - closed) * 1000,
    }


def write_a_poem(driver: Any, url: str) -> None:
    """Open `url` in a new tab and write one poem there with the remembered model."""
    from selenium.webdriver.common.keys import Keys

    new_tab(driver)
    terminal = BrowserTerminal(driver)
    terminal.open(url)
    terminal.wait_for(" lora │ ", LOADED_S)
    terminal.send(FIRST_LINE)
    terminal.wait_for(FIRST_LINE, 30)
    terminal.send(Keys.ENTER)
    terminal.wait_for(" tokens", LOADED_S)


def total_memory(server: psutil.Process) -> dict[str, float]:
    """The studios' memory in MiB: PSS summed over them, and the median RSS and USS of one."""
    infos = [studio.memory_full_info() for studio in studio_processes(server)]
    return {
        "studios": len(infos),
        "pss_mib": sum(info.pss for info in infos) / 2**20,
        "rss_mib": statistics.median(info.rss for info in infos) / 2**20,
        "uss_mib": statistics.median(info.uss for info in infos) / 2**20,
    }


def memory(home: Path, tabs: int) -> dict[str, float]:
    """PSS of one session, and what each further one adds, with `tabs` tabs open at once."""
    with serving(home) as served:
        server = psutil.Process(served.process.pid)
        driver = start_browser()
        try:
            write_a_poem(driver, served.url)
            one = total_memory(server)
            for _ in range(tabs - 1):
                write_a_poem(driver, served.url)
            many = total_memory(server)
        finally:
            driver.quit()
    assert one["studios"] == 1 and many["studios"] == tabs, (one, many)
    return {
        "one_pss": one["pss_mib"],
        "extra_pss": (many["pss_mib"] - one["pss_mib"]) / (tabs - 1),
        "rss": many["rss_mib"],
        "uss": many["uss_mib"],
    }


# One model load in a fresh process, on the home given, printing its seconds.
_LOAD = """
import sys, time
from pathlib import Path
from studio.core.loader import ModelLoader
from studio.core.registry import scan_models
from trainer.common.home import DataHome
import peft, torch, transformers  # imported before the clock starts: the load alone is timed
home = DataHome(Path(sys.argv[1]))
info = scan_models(home).models["neutral"]
start = time.perf_counter()
ModelLoader(home, device="cpu").load(info)
print(time.perf_counter() - start)
"""


def load_seconds(home: Path) -> float:
    """Seconds a fresh process takes to load the neutral model from `home`."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, str(home)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    return float(done.stdout.split()[-1])


def compare_loads(real_home: Path, rounds: int) -> None:
    """Load times with mapped weights and with an own copy, alternating, and their medians."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as temp:
        shared = prepare_home(Path(temp) / "shared", real_home)
        private = prepare_home(Path(temp) / "private", real_home)
        (private / "cache").write_text("a file where the cache folder would go")
        load_seconds(shared)  # writes the mapped weights once
        times: dict[str, list[float]] = {"mapped": [], "own copy": []}
        for _ in range(rounds):
            times["mapped"].append(load_seconds(shared))
            times["own copy"].append(load_seconds(private))
    print(f"model load, neutral on CPU; CPU {cpu_model()}, {os.cpu_count()} cores")
    for name, values in times.items():
        print(f"  {name}: {' '.join(f'{v:.2f}' for v in values)} s")
    ratio = statistics.median(times["mapped"]) / statistics.median(times["own copy"])
    print(
        f"median: mapped {statistics.median(times['mapped']):.2f} s, own copy "
        f"{statistics.median(times['own copy']):.2f} s (ratio {ratio:.2f}); load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def cpu_model() -> str:
    """The CPU's model name, as the kernel reports it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def prepare_home(temp: Path, real_home: Path | None) -> Path:
    """A home of tiny models, or one that links `real_home`'s converted bases."""
    home = temp / "home"
    if real_home is None:
        return build_tiny_home(home)
    (home / "bases").mkdir(parents=True)
    for base in (real_home / "bases").iterdir():
        os.symlink(base, home / "bases" / base.name, target_is_directory=True)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tabs", type=int, default=3, help="tabs open at once for memory")
    parser.add_argument("--home", type=Path, default=None, help="use this home's real base")
    parser.add_argument("--loads", type=int, default=0, help="time model loads instead")
    args = parser.parse_args()
    if args.loads:
        if args.home is None:
            parser.error("--loads needs --home (a home with the converted base)")
        compare_loads(args.home, args.loads)
        return
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        home = prepare_home(Path(temp) / "shared", args.home)
        with serving(home) as served:
            server = psutil.Process(served.process.pid)
            driver = start_browser()
            try:
                runs = [one_run(driver, served.url, server) for _ in range(args.runs)]
            finally:
                driver.quit()
            server_mib = server.memory_info().rss / 2**20
        shared = memory(home, args.tabs)
        private_home = prepare_home(Path(temp) / "private", args.home)
        (private_home / "cache").write_text("a file where the cache folder would go")
        private = memory(private_home, args.tabs)
    models = "tiny test models" if args.home is None else f"bundled models, base from {args.home}"
    print(f"poetstudio serve, {models}; CPU {cpu_model()}, {os.cpu_count()} cores")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for index, run in enumerate(runs, 1):
        print(
            f"  run {index}: page paint {run['paint_ms']:.0f} ms, websocket opened "
            f"{run['socket_ms']:.0f} ms, studio frame {run['frame_ms']:.0f} ms, studio exit "
            f"{run['exit_ms']:.0f} ms after the tab closed"
        )

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(
        f"median of {args.runs}: page paint {median('paint_ms'):.0f} ms; websocket opened "
        f"{median('socket_ms'):.0f} ms; studio's first frame {median('frame_ms'):.0f} ms after "
        f"the request (target 1500 ms); studio exit {median('exit_ms'):.0f} ms after the tab "
        f"closed (target 1000 ms); the server itself {server_mib:.0f} MiB RSS"
    )
    for name, figures in (("weights shared", shared), ("own copy each", private)):
        print(
            f"memory, {args.tabs} tabs, one poem each, {name}: first session PSS "
            f"{figures['one_pss']:.0f} MiB, each extra session adds PSS "
            f"{figures['extra_pss']:.0f} MiB; per studio RSS {figures['rss']:.0f} MiB, USS "
            f"{figures['uss']:.0f} MiB (medians)"
        )
    print(f"extra-session PSS, shared / own copy: {shared['extra_pss'] / private['extra_pss']:.2f}")


if __name__ == "__main__":
    main()
