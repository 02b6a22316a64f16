"""`poetstudio serve`'s rules without a browser: the token, the session cap, the exposure warning
and the printed URL, and the server enforcing them in process (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import gc
import shlex
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from studio.core.serving import (
    TOKEN_MESSAGE,
    SessionCap,
    check_max_sessions,
    check_token,
    cookie_name,
    exposure_warning,
    is_local_host,
    new_token,
    serve_url,
    sessions_full_message,
    studio_command,
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
    with pytest.raises(PoetstudioError, match="at least 1"):
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


def test_each_session_runs_this_interpreters_studio_on_the_home() -> None:
    args = shlex.split(studio_command(Path("/my home"), "cpu", "fp32"))
    assert args == [
        "exec",
        sys.executable,
        *("-m", "studio", "--home", "/my home", "--precision", "fp32", "--device", "cpu"),
    ]
    assert "--device" not in studio_command(Path("/h"), None, "auto")


def test_the_full_message_names_the_cap_and_what_to_do() -> None:
    assert "all 1 session is in use (--max-sessions 1)" in sessions_full_message(1)
    assert "all 3 sessions are in use" in sessions_full_message(3)
    assert "close another studio tab" in sessions_full_message(3)


# The server in process. Its "studio" is a stand-in that exits once it reads a byte (the quit
# that ends a session), so no model loads and every session ends as soon as its socket closes.
STAND_IN = shlex.join([sys.executable, "-c", "import sys; sys.stdin.buffer.read(1)"])


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    pytest.importorskip("textual_serve")
    from aiohttp.test_utils import TestClient, TestServer

    from studio.core.webserver import StudioServer

    server = StudioServer(STAND_IN, "127.0.0.1", 0, "s3cret", 1, title="poetstudio")
    async with TestClient(TestServer(await server.build_app())) as test_client:
        yield test_client
    # textual-serve never waits on its studio processes: collect their transports while the
    # loop still runs, or they complain about a closed loop when collected later.
    await asyncio.sleep(0.2)
    gc.collect()


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
