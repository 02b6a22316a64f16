"""Driving `poetstudio serve` for real: a data home of tiny models, the server as a process, and a
headless chromium whose terminal screen is read back as text.

The page draws the studio on a canvas (xterm.js), so its text is not in the DOM. A script added
before the page loads keeps a copy of every terminal frame the page's websocket receives, with
its arrival time; `BrowserTerminal` replays them into a pyte screen of the page's size.
"""

from __future__ import annotations

import base64
import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers.models import build_tiny_base, build_tiny_lora

URL_PREFIX = "Serving the studio at "
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

_FRAME_HOOK = """
window.__frames = [];
window.__socketUrl = null;
window.__socketAt = null;
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    window.__socketUrl = String(args[0]);
    window.__socketAt = performance.now();
    this.addEventListener('message', (event) => {
      if (typeof event.data === 'string') return;
      const bytes = new Uint8Array(event.data);
      let text = '';
      for (let i = 0; i < bytes.length; i += 8192) {
        text += String.fromCharCode(...bytes.subarray(i, i + 8192));
      }
      window.__frames.push([performance.now(), btoa(text)]);
    });
  }
};
"""


def build_tiny_home(root: Path) -> Path:
    """A data home at `root` where every emotion (neutral included) has a tiny user LoRA, so
    the studio never needs the real base."""
    from trainer.common.emotions import MODEL_EMOTIONS

    base = build_tiny_base(root / "tiny-base")
    joy = build_tiny_lora(base, root / "models" / "joy", "joy")
    for emotion in MODEL_EMOTIONS:
        if emotion != "joy":
            folder = Path(shutil.copytree(joy, root / "models" / emotion))
            manifest = json.loads((folder / "poetstudio.json").read_text())
            manifest["emotion"] = emotion
            (folder / "poetstudio.json").write_text(json.dumps(manifest))
    return root


@dataclass
class Served:
    """A running `poetstudio serve` and what it printed so far."""

    process: subprocess.Popen[str]
    url: str
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        """The port it bound."""
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def origin(self) -> str:
        """The URL without its path and token."""
        return f"http://127.0.0.1:{self.port}"


def _pump(stream: Any, into: list[str], lines: queue.Queue[str] | None) -> None:
    for line in stream:
        into.append(line)
        if lines is not None:
            lines.put(line)


@contextmanager
def serving(home: Path, *args: str, start_s: float = 60.0) -> Iterator[Served]:
    """Run `poetstudio serve --port 0 --home HOME ARGS...` until the block ends (SIGTERM)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "studio", "serve", "--port", "0", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout: list[str] = []
    stderr: list[str] = []
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None and process.stderr is not None
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, stdout, lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, stderr, None), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        url = _wait_for_url(process, lines, start_s, stderr)
        yield Served(process, url, stdout, stderr)
    finally:
        stop(process)
        for reader in readers:
            reader.join(timeout=5)


def _wait_for_url(
    process: subprocess.Popen[str], lines: queue.Queue[str], limit: float, stderr: list[str]
) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith(URL_PREFIX):
            return line[len(URL_PREFIX) :].strip()
    raise RuntimeError(f"poetstudio serve printed no URL; stderr: {''.join(stderr)}")


def stop(process: subprocess.Popen[str], limit: float = 20.0) -> int:
    """SIGTERM `process` (the server stops its studios first) and wait; SIGKILL past `limit`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def browser_paths() -> tuple[str, str] | None:
    """The chromium binary and its chromedriver, or None where either is missing."""
    browser = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_browser(width: int = 1200, height: int = 800) -> Any:
    """A headless chromium under selenium, with the frame hook on every page it opens."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = browser_paths()
    assert paths is not None, "no chromium and chromedriver"
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(paths[1]), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _FRAME_HOOK})
    return driver


def new_tab(driver: Any) -> None:
    """Open a new tab in `driver`'s browser and switch to it, with the frame hook installed
    (the hook is per tab)."""
    driver.switch_to.new_window("tab")
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _FRAME_HOOK})


class BrowserTerminal:
    """The studio's screen in one browser tab, as text, and keys sent to it."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.screen: Any = None
        self._stream: Any = None
        self.frames: list[tuple[float, bytes]] = []

    def open(self, url: str, limit: float = 20.0) -> None:
        """Load `url` and wait until the page has opened its websocket."""
        import pyte

        self.driver.get(url)
        socket_url = self._poll(
            lambda: self.driver.execute_script("return window.__socketUrl"), limit
        )
        query = parse_qs(urlsplit(socket_url).query)
        self.screen = pyte.Screen(int(query["width"][0]), int(query["height"][0]))
        self._stream = pyte.ByteStream(self.screen)

    def text(self) -> str:
        """The screen as it stands, replaying the frames that arrived since the last look."""
        for at, data in self.driver.execute_script("return window.__frames.splice(0)"):
            frame = base64.b64decode(data)
            self.frames.append((at, frame))
            self._stream.feed(frame)
        return "\n".join(self.screen.display)

    def first_showing(self, needle: str) -> float | None:
        """Milliseconds from the navigation's start to the first frame after which the screen
        shows `needle`, replayed from the frames seen so far; None if it never did."""
        import pyte

        screen = pyte.Screen(self.screen.columns, self.screen.lines)
        stream = pyte.ByteStream(screen)
        for at, frame in self.frames:
            stream.feed(frame)
            if needle in "\n".join(screen.display):
                return at
        return None

    def wait_for(self, needle: str, limit: float = 30.0) -> str:
        """The screen once it shows `needle`; AssertionError with the screen past `limit`."""
        deadline = time.monotonic() + limit
        while True:
            screen = self.text()
            if needle in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} on screen after {limit:g}s:\n{screen}")
            time.sleep(0.2)

    def send(self, *keys: str, ctrl: bool = False) -> None:
        """Type `keys` into the terminal, holding ctrl when asked."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        helper = self.driver.find_element(By.CSS_SELECTOR, "textarea.xterm-helper-textarea")
        self.driver.execute_script("arguments[0].focus()", helper)
        chain = ActionChains(self.driver)
        if ctrl:
            chain.key_down(Keys.CONTROL).send_keys(*keys).key_up(Keys.CONTROL)
        else:
            chain.send_keys(*keys)
        chain.perform()

    def _poll(self, probe: Any, limit: float) -> Any:
        deadline = time.monotonic() + limit
        while (value := probe()) is None:
            if time.monotonic() > deadline:
                raise AssertionError("the page opened no websocket")
            time.sleep(0.05)
        return value
