"""How fast `poetstudio serve` paints the studio in a browser, and what each browser session costs.

Starts `poetstudio serve` on a free port and a headless chromium (Debian's `chromium` and
`chromium-driver`, driven by selenium), then for each run opens the printed URL in the tab and
times, from the start of the navigation (the request):
  - the page's first contentful paint (the "Starting the studio…" page),
  - when the page opened its websocket (its session's studio starts then), and
  - the studio's first full frame in the browser: the first terminal frame after which the
    footer (the last widget drawn) is on screen; the model loads after it.
Once the session's model has loaded it reads the memory of the studio process that the session
started (RSS, and USS: the memory that process alone holds, which a further session adds). Each
run waits for the last run's studio to quit, so runs never overlap.

    .venv/bin/python benchmarks/bench_serve.py [--runs 5] [--home DIR]

Without --home the sessions use tiny test models; with it they use the bundled models on the
converted base of that data home (linked read-only into a temporary home).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    serving,
    start_browser,
)

FOOTER = "palette"  # the footer's command-palette hint: drawn once the whole screen is up
LOADED_S = 300.0


def studio_processes(server: psutil.Process) -> list[psutil.Process]:
    """The studio processes the server started, one per session."""
    return [p for p in server.children(recursive=True) if _command(p)[1:3] == ["-m", "studio"]]


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
    """Open `url` once; the paint times in ms and the session's studio memory in MiB."""
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
    (studio,) = studio_processes(server)
    memory = studio.memory_full_info()
    driver.get("about:blank")  # closes the session's websocket
    wait_for_no_studio(server)
    return {
        "paint_ms": float(paint) if paint is not None else float("nan"),
        "socket_ms": float(socket_ms),
        "frame_ms": frame_ms,
        "rss_mib": memory.rss / 2**20,
        "uss_mib": memory.uss / 2**20,
    }


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
    parser.add_argument("--home", type=Path, default=None, help="use this home's real base")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as temp:
        home = prepare_home(Path(temp), args.home)
        with serving(home) as served:
            server = psutil.Process(served.process.pid)
            driver = start_browser()
            try:
                runs = [one_run(driver, served.url, server) for _ in range(args.runs)]
            finally:
                driver.quit()
            server_mib = server.memory_info().rss / 2**20
    models = "tiny test models" if args.home is None else f"bundled models, base from {args.home}"
    print(f"poetstudio serve, {models}, {args.runs} runs (cold first)")
    for index, run in enumerate(runs, 1):
        print(
            f"  run {index}: page paint {run['paint_ms']:.0f} ms, websocket opened "
            f"{run['socket_ms']:.0f} ms, studio frame "
            f"{run['frame_ms']:.0f} ms, studio RSS {run['rss_mib']:.0f} MiB "
            f"(USS {run['uss_mib']:.0f} MiB)"
        )

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(
        f"median: page paint {median('paint_ms'):.0f} ms; websocket opened "
        f"{median('socket_ms'):.0f} ms; studio's first frame "
        f"{median('frame_ms'):.0f} ms after the request (target 2000 ms); per session "
        f"RSS {median('rss_mib'):.0f} MiB, USS {median('uss_mib'):.0f} MiB; "
        f"the server itself {server_mib:.0f} MiB"
    )


if __name__ == "__main__":
    main()
