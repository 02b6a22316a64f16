"""`poetstudio serve` for real: a headless chromium writes and saves a poem with tiny models, and
the server refuses a missing or wrong token and a session past the cap, and warns when it is
reachable beyond this machine."""

from __future__ import annotations

import asyncio
import http.cookiejar
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from studio.cli import app
from studio.core.serving import MAX_SESSIONS, TOKEN_MESSAGE, sessions_full_message
from tests.helpers.serving import BrowserTerminal, browser_paths, build_tiny_home, serving
from trainer.common.emotions import MODEL_EMOTIONS, NEUTRAL

FIRST_LINE = "The lamps are out along the quay"
TOKEN = "t0k3n-for-tests"
# Generous per-step limits: the machine running the tests may be busy.
START_S, LOAD_S, POEM_S = 45.0, 45.0, 60.0


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One home of tiny models for the module: building it costs seconds."""
    return build_tiny_home(tmp_path_factory.mktemp("served-home"))


def _needs_web_extra() -> None:
    pytest.importorskip("textual_serve", reason="the web extra is not installed")


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, str]:
    """Status and body of a GET, errors included."""
    try:
        with (opener or urllib.request.build_opener()).open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.subprocess
def test_a_browser_picks_joy_writes_a_poem_and_saves_it(tiny_home: Path, tmp_path: Path) -> None:
    _needs_web_extra()
    pytest.importorskip("selenium", reason="selenium (the dev extra) is not installed")
    pytest.importorskip("pyte", reason="pyte (the dev extra) is not installed")
    if browser_paths() is None:
        pytest.skip("no chromium and chromedriver: apt-get install -y chromium chromium-driver")
    from selenium.webdriver.common.keys import Keys

    from tests.helpers.serving import start_browser

    with serving(tiny_home, "--token", TOKEN) as served:
        driver = start_browser()
        try:
            terminal = BrowserTerminal(driver)
            terminal.open(served.url)
            screen = terminal.wait_for("● trust", START_S)
            assert "● neutral" in screen and "● joy" in screen
            # ctrl+down walks the picker from the remembered emotion (neutral, in a new home).
            for emotion in MODEL_EMOTIONS[MODEL_EMOTIONS.index(NEUTRAL) + 1 :]:
                terminal.send(Keys.DOWN, ctrl=True)
                terminal.wait_for(f"{emotion} · user lora", LOAD_S)
                if emotion == "joy":
                    break
            terminal.send(FIRST_LINE)
            terminal.wait_for(FIRST_LINE, 10)
            terminal.send(Keys.ENTER)
            screen = terminal.wait_for(" tokens", POEM_S)
            assert "Poem 1/1 · joy" in screen
            terminal.send("s", ctrl=True)
            terminal.wait_for("Poem saved", 15)
            driver.save_screenshot(str(tmp_path / "served-studio.png"))
            server = psutil.Process(served.process.pid)
            assert server.children(), "the session runs no studio"
            driver.get("about:blank")  # browsing away ends the session and its studio
            deadline = time.monotonic() + 30
            while server.children():
                assert time.monotonic() < deadline, "the studio outlived the page"
                time.sleep(0.2)
        finally:
            driver.quit()
    poems = (tiny_home / "poems.md").read_text()
    assert f"- first line: {FIRST_LINE}" in poems and "- emotion: joy" in poems
    assert (tmp_path / "served-studio.png").stat().st_size > 0


@pytest.mark.subprocess
def test_a_missing_or_wrong_token_is_refused_and_the_right_one_opens_the_page(
    tmp_path: Path,
) -> None:
    _needs_web_extra()
    with serving(tmp_path / "home", "--token", TOKEN) as served:
        origin = served.origin()
        assert served.url == f"{origin}/?token={TOKEN}"
        assert _get(f"{origin}/") == (403, TOKEN_MESSAGE)
        assert _get(f"{origin}/?token=wrong") == (403, TOKEN_MESSAGE)
        assert _get(f"{origin}/ws") == (403, TOKEN_MESSAGE)
        browser_like = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        status, page = _get(served.url, browser_like)
        assert status == 200 and "textual.js" in page
    assert not any("warning" in line for line in served.stderr)


@pytest.mark.subprocess
def test_a_session_past_the_cap_is_refused_with_a_message(tiny_home: Path) -> None:
    _needs_web_extra()
    import aiohttp

    async def two_sessions(origin: str) -> tuple[str, int, str]:
        # unsafe: aiohttp keeps no cookies for a bare IP address otherwise.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            await session.get(f"{origin}/?token={TOKEN}")
            first = await session.ws_connect(f"{origin}/ws?width=80&height=24")
            await first.receive(timeout=START_S)  # the first studio is up and drawing
            second = await session.ws_connect(f"{origin}/ws?width=80&height=24")
            refused = (await second.receive_bytes(timeout=10)).decode()
            async with session.get(f"{origin}/") as page:
                status, text = page.status, await page.text()
            await second.close()
            await first.close()
            return refused, status, text

    with serving(tiny_home, "--token", TOKEN, "--max-sessions", "1") as served:
        refused, status, text = asyncio.run(two_sessions(served.origin()))
    assert "at most 1 browser tab at once" in "".join(served.stdout)
    assert sessions_full_message(1) in refused
    assert (status, text) == (503, sessions_full_message(1))


@pytest.mark.subprocess
def test_a_host_beyond_loopback_prints_a_warning(tmp_path: Path) -> None:
    _needs_web_extra()
    with serving(tmp_path / "home", "--host", "0.0.0.0") as served:
        assert "/?token=" in served.url and "0.0.0.0" not in served.url
    warning = "".join(served.stderr)
    assert "warning: --host 0.0.0.0 serves the studio beyond this machine" in warning
    assert "run training jobs and write files in the data home" in warning


def test_serve_without_the_web_extra_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("studio.core.serving.web_available", lambda: False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: `poetstudio serve` needs textual-serve: `pip install -e '.[web]'` adds it"
    )


def _gone(process: psutil.Process) -> bool:
    """Whether `process` has ended (a zombie waiting for init to reap it has)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP, signal.SIGINT, signal.SIGTERM])
def test_studios_end_with_their_server_however_it_is_stopped(
    tiny_home: Path, signum: signal.Signals
) -> None:
    _needs_web_extra()
    import aiohttp

    async def open_session_then_stop(served_pid: int, origin: str) -> psutil.Process:
        server = psutil.Process(served_pid)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            await session.get(f"{origin}/?token={TOKEN}")
            socket = await session.ws_connect(f"{origin}/ws?width=80&height=24")
            await socket.receive(timeout=START_S)  # the studio is up and drawing
            (studio,) = server.children()
            os.kill(served_pid, signum)
            await asyncio.to_thread(served.process.wait, 30)
            return studio

    with serving(tiny_home, "--token", TOKEN) as served:
        studio = asyncio.run(open_session_then_stop(served.process.pid, served.origin()))
        if signum != signal.SIGKILL:
            # Stopped in good order, the server has ended its studio before exiting.
            assert _gone(studio), f"the studio outlived serve stopped by {signum.name}"
            assert "Traceback" not in "".join(served.stderr)
        deadline = time.monotonic() + 20  # killed outright, the kernel ends it
        while not _gone(studio):
            if time.monotonic() > deadline:
                studio.kill()
                pytest.fail(f"the studio outlived serve killed by {signum.name}")
            time.sleep(0.05)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--host", ""], "error: --host must not be empty: leave it out for 127.0.0.1"),
        (["--host", "  "], "error: --host must not be empty: leave it out for 127.0.0.1"),
        (
            ["--max-sessions", "100000000000000000000"],
            f"error: --max-sessions must be between 1 and {MAX_SESSIONS}",
        ),
        (["--max-sessions", "0"], f"error: --max-sessions must be between 1 and {MAX_SESSIONS}"),
    ],
)
def test_a_blank_host_or_an_unbounded_cap_is_one_line_and_serves_nothing(
    args: list[str], error: str
) -> None:
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 1
    assert result.output.startswith(error) and result.output.count("\n") == 1
    assert "Serving the studio" not in result.output
