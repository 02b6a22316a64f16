"""`poetstudio serve`'s rules without a browser: the token, the session cap, the exposure warning
and the printed URL, and the server enforcing them in process (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from studio.core.serving import (
    MAX_COLUMNS,
    MAX_ROWS,
    MAX_SESSIONS,
    STUDIO_BOOT,
    TOKEN_MESSAGE,
    SessionCap,
    check_host,
    check_max_sessions,
    check_token,
    cookie_name,
    exposure_warning,
    is_local_host,
    local_location,
    new_token,
    serve_url,
    sessions_full_message,
    studio_command,
    terminal_size,
    token_matches,
)
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    from aiohttp.test_utils import TestClient


def test_tokens_match_only_exactly() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abd", "abc")
    assert not token_matches("", "abc")
    assert not token_matches(None, "abc")


def test_generated_tokens_differ_and_need_no_quoting_in_a_url() -> None:
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 20
    assert serve_url("127.0.0.1", 8000, first).endswith(f"?token={first}")


def test_a_blank_or_spaced_token_is_a_one_line_error() -> None:
    with pytest.raises(PoetstudioError, match="empty"):
        check_token("  ")
    with pytest.raises(PoetstudioError, match="spaces"):
        check_token("two words")
    assert check_token(" s3cret ") == "s3cret"


def test_the_session_cap_refuses_past_its_limit_and_frees_a_place_on_release() -> None:
    cap = SessionCap(2)
    assert cap.try_acquire() and cap.try_acquire()
    assert cap.full and not cap.try_acquire()
    cap.release()
    assert not cap.full and cap.try_acquire()
    with pytest.raises(PoetstudioError, match="between 1 and"):
        check_max_sessions(0)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_hosts_are_local_and_get_no_warning(host: str) -> None:
    assert is_local_host(host)
    assert exposure_warning(host, 8000, Path("/data")) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "studio.example"])
def test_other_hosts_warn_that_visitors_can_train_and_write_in_the_home(host: str) -> None:
    warning = exposure_warning(host, 8123, Path("/data/home"))
    assert warning is not None
    assert "port 8123" in warning and "run training jobs" in warning
    assert "write files in the data home /data/home" in warning


def test_the_url_names_this_machine_for_a_wildcard_bind_and_brackets_ipv6() -> None:
    assert serve_url("127.0.0.1", 8000, "t") == "http://127.0.0.1:8000/?token=t"
    assert serve_url("::1", 9000, "t") == "http://[::1]:9000/?token=t"
    assert "0.0.0.0" not in serve_url("0.0.0.0", 8000, "t")
    assert serve_url("127.0.0.1", 8000, "a/b+c") == "http://127.0.0.1:8000/?token=a%2Fb%2Bc"


def test_each_session_runs_this_interpreters_studio_on_the_home_tied_to_the_server() -> None:
    args = shlex.split(studio_command(Path("/my home"), "cpu", "fp32"))
    code = f"{STUDIO_BOOT}({os.getpid()}); from studio.cli import main; main()"
    assert args == [
        "exec",
        sys.executable,
        *("-c", code, "--home", "/my home", "--precision", "fp32", "--device", "cpu"),
    ]
    assert "--device" not in studio_command(Path("/h"), None, "auto")
    assert f"{STUDIO_BOOT}(42);" in studio_command(Path("/h"), None, "auto", parent=42)


def test_the_terminal_a_browser_asks_for_is_bounded() -> None:
    assert terminal_size("120", "40") == (120, 40)
    assert terminal_size("3000", "3000") == (MAX_COLUMNS, MAX_ROWS) == (500, 200)
    assert terminal_size(10**30, "9" * 400) == (500, 200)
    assert terminal_size("0", "-5") == (1, 24)  # "-5" is not a decimal count: the default
    for width, height in ((None, None), ("abc", "1e3"), ("٣", " "), (True, 12.5), ([80], {})):
        assert terminal_size(width, height) == (80, 24)


def test_a_blank_host_or_a_huge_session_cap_is_a_one_line_error() -> None:
    for host in ("", "   "):
        with pytest.raises(PoetstudioError, match="--host must not be empty") as caught:
            check_host(host)
        assert "\n" not in str(caught.value)
    assert check_host(" 0.0.0.0 ") == "0.0.0.0"
    assert check_max_sessions(MAX_SESSIONS) == MAX_SESSIONS
    with pytest.raises(PoetstudioError, match=f"between 1 and {MAX_SESSIONS}"):
        check_max_sessions(10**20)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/static/css/xterm.css", "/static/css/xterm.css"),
        ("//evil.example/", "/evil.example/"),
        ("///evil.example/", "/evil.example/"),
        ("/\\evil.example/", "/evil.example/"),
        ("/\\/evil.example", "/evil.example"),
        ("/\t/evil.example/", "/evil.example/"),
        ("/ \n//evil.example", "/evil.example"),
        ("/a\\b c", "/a%5Cb%20c"),
    ],
)
def test_the_token_redirect_stays_on_this_server(path: str, expected: str) -> None:
    assert local_location(path, []) == expected
    assert local_location(path, [("fontsize", "14")]) == f"{expected}?fontsize=14"


def test_the_full_message_names_the_cap_and_what_to_do() -> None:
    assert "all 1 session is in use (--max-sessions 1)" in sessions_full_message(1)
    assert "all 3 sessions are in use" in sessions_full_message(3)
    assert "close another studio tab" in sessions_full_message(3)


# The server in process. Its "studio" is a stand-in that exits once it reads a byte (the quit
# that ends a session), so no model loads and every session ends as soon as its socket closes.
STAND_IN = shlex.join([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"])

# A stand-in that records the size it was started at and every meta packet it is sent (resize,
# quit), one JSON line each, into the file named by its argument.
RECORDER = """
import json, os, sys
def note(record):
    with open(sys.argv[1], "a") as out:
        out.write(json.dumps(record) + "\\n")
note({"type": "start", "width": int(os.environ["COLUMNS"]), "height": int(os.environ["ROWS"])})
source = sys.stdin.buffer
while len(head := source.read(5)) == 5:
    body = source.read(int.from_bytes(head[1:], "big"))
    if head[:1] == b"M":
        note(json.loads(body))
"""

# A stand-in like a studio drawing a huge first frame for a tab that is already gone: it writes
# frames without end, never reads its input, and ignores SIGTERM; its pid goes to the file named
# by its argument.
BLOCKED_WRITER = """
import os, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
sys.stdout.buffer.write(b"__GANGLION__\\n")
frame = b"D" + (1 << 20).to_bytes(4, "big") + b"x" * (1 << 20)
while True:
    sys.stdout.buffer.write(frame)
    sys.stdout.buffer.flush()
"""

# A stand-in like a studio busy loading a model when the server stops: it ignores the quit it
# is sent and SIGTERM; its pid goes to the file named by its argument.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(120)
"""

ClientFactory = Callable[[str], Awaitable["TestClient"]]


@pytest.fixture
async def serve_command() -> AsyncIterator[ClientFactory]:
    """Start the server in process with a given studio command; yields the starter."""
    pytest.importorskip("textual_serve")
    from aiohttp.test_utils import TestClient, TestServer

    from studio.core.webserver import StudioServer

    clients: list[TestClient] = []

    async def start(command: str) -> TestClient:
        server = StudioServer(command, "127.0.0.1", 0, "s3cret", 1, title="poetstudio")
        test_client = TestClient(TestServer(await server.build_app()))
        await test_client.start_server()
        clients.append(test_client)
        return test_client

    yield start
    for test_client in clients:
        await test_client.close()
    # Collect the studios' transports while the loop still runs, or they complain about a
    # closed loop when collected later.
    await asyncio.sleep(0.2)
    gc.collect()


@pytest.fixture
async def client(serve_command: ClientFactory) -> TestClient:
    return await serve_command(STAND_IN)


def _script(path: Path, code: str, *args: Path) -> str:
    """A command running `code` in place of the shell, as the studio's command does."""
    path.write_text(code)
    return "exec " + shlex.join([sys.executable, str(path), *map(str, args)])


async def _raw_get(client: TestClient, target: str) -> tuple[str, dict[str, str]]:
    """The status line and headers of `GET target`, sent byte for byte (a client library
    would read `//host/...` as another host)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    head = (await reader.read()).decode("latin-1").split("\r\n\r\n")[0].split("\r\n")
    writer.close()
    headers = dict(line.split(": ", 1) for line in head[1:])
    return head[0], headers


@pytest.mark.parametrize(
    "target", ["//evil.example/", "///evil.example/", "/\\evil.example/", "/%2F%2Fevil.example/"]
)
async def test_the_token_redirect_never_leaves_this_server(client: TestClient, target: str) -> None:
    status, headers = await _raw_get(client, f"{target}?token=s3cret&fontsize=14")
    assert status.split()[1] == "303"
    location = headers["Location"]
    assert location.startswith("/") and location[1] not in "/\\", location
    assert location.endswith("evil.example/?fontsize=14")


async def _wait_until(probe: Callable[[], Awaitable[bool]], limit: float, what: str) -> None:
    for _ in range(int(limit / 0.1)):
        if await probe():
            return
        await asyncio.sleep(0.1)
    pytest.fail(what)


async def test_a_huge_terminal_is_bounded_at_start_and_on_resize(
    serve_command: ClientFactory, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jsonl"
    client = await serve_command(_script(tmp_path / "recorder.py", RECORDER, notes))
    await client.get("/?token=s3cret")
    socket = await client.ws_connect("/ws?width=3000&height=3000")
    await socket.send_str(json.dumps(["resize", {"width": 99999, "height": 4000}]))
    await socket.send_str(json.dumps(["resize", {"width": "a lot", "height": [1]}]))
    await socket.send_str("not json")  # ignored, not a failed session
    await socket.send_str(json.dumps(["resize", {"width": 100, "height": 30}]))

    async def resized_thrice() -> bool:
        return notes.is_file() and notes.read_text().count("resize") == 3

    await _wait_until(resized_thrice, 20, "the studio never got its three resizes")
    await socket.close()
    sizes = [(n["type"], n["width"], n["height"]) for n in map(json.loads, notes.open())]
    assert sizes[:4] == [
        ("start", 500, 200),
        ("resize", 500, 200),
        ("resize", 80, 24),
        ("resize", 100, 30),
    ]


async def test_a_studio_blocked_on_a_closed_tab_is_killed_and_frees_its_place(
    serve_command: ClientFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "studio.pid"
    client = await serve_command(_script(tmp_path / "writer.py", BLOCKED_WRITER, pid_file))
    await client.get("/?token=s3cret")
    socket = await client.ws_connect("/ws?width=3000&height=3000")

    async def started() -> bool:
        return pid_file.is_file()

    await _wait_until(started, 20, "the stand-in studio never started")
    studio = psutil.Process(int(pid_file.read_text()))
    await socket.close()  # without reading a byte of the frames

    async def studio_gone() -> bool:
        try:
            return studio.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    await _wait_until(studio_gone, 20, "the studio of a closed tab was never ended")

    async def place_free() -> bool:
        return (await client.get("/")).status == 200

    await _wait_until(place_free, 20, "the closed tab's place under the cap never came back")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_pages_without_the_token_or_with_a_wrong_one_are_refused(client: TestClient) -> None:
    for path in ("/", "/?token=wrong", "/static/js/textual.js", "/ws"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403, path
        assert await response.text() == TOKEN_MESSAGE


async def test_the_token_sets_a_cookie_and_leaves_the_address_bar(client: TestClient) -> None:
    response = await client.get("/?token=s3cret&fontsize=14", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/?fontsize=14"
    assert response.cookies[cookie_name(0)].value == "s3cret"
    page = await client.get("/?fontsize=14")
    text = await page.text()
    assert page.status == 200 and 'data-font-size="14"' in text
    assert "/ws" in text and "fonts.googleapis" not in text
    assert page.headers["Cache-Control"] == "no-store"  # never parked in the back/forward cache
    assert (await client.get("/static/js/textual.js")).status == 200


async def test_a_websocket_from_another_sites_page_is_refused(client: TestClient) -> None:
    await client.get("/?token=s3cret")
    response = await client.get("/ws", headers={"Origin": "http://evil.example"})
    assert response.status == 403


async def test_a_session_past_the_cap_is_told_why_and_starts_no_studio(client: TestClient) -> None:
    await client.get("/?token=s3cret")
    first = await client.ws_connect("/ws?width=80&height=24")
    second = await client.ws_connect("/ws?width=80&height=24")
    message = await second.receive_bytes(timeout=10)
    assert sessions_full_message(1) in message.decode()
    page = await client.get("/")
    assert page.status == 503 and await page.text() == sessions_full_message(1)
    await second.close()
    await first.close()
    for _ in range(100):  # the first session's place comes back once its studio has quit
        if (await client.get("/")).status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the session's place never came back after its socket closed")


async def test_stopping_the_server_ends_a_busy_studio_before_it_returns(
    serve_command: ClientFactory, tmp_path: Path
) -> None:
    pid_file = tmp_path / "studio.pid"
    client = await serve_command(_script(tmp_path / "stubborn.py", STUBBORN, pid_file))
    await client.get("/?token=s3cret")
    await client.ws_connect("/ws?width=80&height=24")

    async def started() -> bool:
        return pid_file.is_file()

    await _wait_until(started, 20, "the stand-in studio never started")
    studio = psutil.Process(int(pid_file.read_text()))
    await client.close()  # the server's shutdown, as on SIGINT, SIGTERM or SIGHUP
    with contextlib.suppress(psutil.NoSuchProcess):
        assert studio.status() == psutil.STATUS_ZOMBIE, "the studio outlived its server"
