"""The studio in a browser: textual-serve's server, with a token and a session cap in front.

textual-serve (the optional `web` extra) runs one studio process per websocket, that is per
browser tab, and forwards the terminal stream to xterm.js in the page. It has no notion of who
may connect or how many; this subclass refuses, before any studio process starts, every request
without the token, every websocket from another site's page, and every session past the cap.
The token arrives once in the URL; the page then redirects to itself without it, leaving a
cookie, so the token stays out of the address bar and the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import signal
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from studio.core.serving import (
    TOKEN_MESSAGE,
    TOKEN_PARAM,
    SessionCap,
    cookie_name,
    local_location,
    sessions_full_message,
    terminal_size,
    token_matches,
)
from trainer.common.errors import PoetstudioError, first_line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger("poetstudio serve")
# How long stopping the server waits for open connections once every studio has ended.
SHUTDOWN_S = 2.0
# Ending a session: the studio gets QUIT_S to quit when asked, then TERM_S after SIGTERM, then
# SIGKILL. Nothing is lost by cutting it short: the studio writes poems and settings atomically
# as it goes, and its training jobs are processes of their own.
QUIT_S = 0.4
TERM_S = 0.3
# How long a killed studio's pipes may take to close (a child it left holding them open).
REAP_S = 5.0
CROSS_SITE_MESSAGE = "poetstudio serve: refused a websocket opened by another site's page"

# Our own page, not textual-serve's template: it would fetch a web font from the internet, which
# holds up the first paint wherever the internet is slow or unreachable.
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="/static/css/xterm.css">
<script src="/static/js/textual.js"></script>
<style>
body {{ background: #0c181f; color: #e0e0e0; font-family: monospace; margin: 0; }}
.note {{ position: absolute; inset: 0; display: flex; align-items: center;
  justify-content: center; font-size: 18px; }}
.textual-terminal {{ opacity: 0; }}
body.-first-byte .textual-terminal {{ opacity: 1; }}
body.-first-byte .starting, .ended, #start {{ display: none; }}
body.-closed .ended {{ display: flex; background: #0c181f; z-index: 10; }}
</style>
</head>
<body>
<div class="note starting">Starting the studio…</div>
<div class="note ended">The session ended. Reload the page to start a new one.</div>
<button id="start" type="button">Start</button>
<div id="terminal" class="textual-terminal" data-session-websocket-url="{websocket}"
  data-font-size="{font_size}"></div>
</body>
</html>
"""


class StudioSession(AppService):
    """One browser tab's studio process: started at the size the tab asks for (bounded), and
    always ended, within QUIT_S + TERM_S and a kill, once the tab's socket has closed."""

    def __init__(self, command: str, websocket: web.WebSocketResponse, server: Server) -> None:
        super().__init__(
            command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=self._close_socket,
            download_manager=server.download_manager,
        )
        self._websocket = websocket
        self._ending: asyncio.Future[None] | None = None

    async def _close_socket(self) -> None:
        await self._websocket.close()

    @property
    def reader(self) -> asyncio.Task[None] | None:
        """The task that forwards the studio's output to the tab; done once the studio's
        output ends (it exited) or the tab can no longer be written to."""
        return self._task

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        """Start the studio in a process group of its own, so that ending the session ends
        whatever the command started (a shell that did not exec, say), and a Ctrl+C meant for
        the server reaches the studio only through the server."""
        self._process = process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        self._stdin = process.stdin
        return process

    async def set_terminal_size(self, width: object, height: object) -> None:
        """Pass on a resize, bounded like the first size (a value that is not a number keeps
        the default)."""
        await super().set_terminal_size(*terminal_size(width, height))

    async def end(self) -> None:
        """End the studio: ask it to quit, then terminate it, then kill it; wait until it is
        gone. Safe to call more than once and from several tasks, and under cancellation."""
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        await asyncio.shield(self._ending)

    async def _end(self) -> None:
        process = self._process
        if process is None:
            return
        # The tab is gone: stop forwarding, and read the studio's output to nowhere, so that a
        # studio blocked on a full pipe can exit and its pipes can close (asyncio reports the
        # exit only once they have).
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        drains = [
            asyncio.ensure_future(_discard(stream))
            for stream in (process.stdout, process.stderr)
            if stream is not None
        ]
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        if process.returncode is None:
            # A studio blocked writing a frame reads nothing: asking must not block us too.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.send_meta({"type": "quit"}), QUIT_S)
        for stop, grace in ((None, QUIT_S), (signal.SIGTERM, TERM_S)):
            if process.returncode is not None:
                break
            if stop is not None:
                _signal_group(process.pid, stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        # Whatever is left in the studio's group, the studio itself included, goes now.
        _signal_group(process.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(process.wait(), REAP_S)
        except TimeoutError:
            log.warning("studio process %d was killed but its output pipes stay open", process.pid)
        for drain in drains:
            drain.cancel()
        if self._stdin is not None:
            self._stdin.close()


async def _discard(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(1 << 16):
            pass


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


class StudioServer(Server):
    """Serves `command` (the studio) to browsers holding `token`, at most `max_sessions` at once."""

    def __init__(
        self, command: str, host: str, port: int, token: str, max_sessions: int, title: str
    ) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = token
        self.cap = SessionCap(max_sessions)
        self._sessions: set[StudioSession] = set()

    def initialize_logging(self) -> None:
        """Warnings only: textual-serve's info lines would bury the address printed at start."""
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    async def on_startup(self, app: web.Application) -> None:
        """Print nothing: `run` announces the address once the port is bound."""

    async def on_shutdown(self, app: web.Application) -> None:
        """End every session's studio (all at once, each within QUIT_S + TERM_S and a kill)
        before the server exits; their sockets close as their studios end."""
        await asyncio.gather(*(session.end() for session in list(self._sessions)))

    @web.middleware
    async def require_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Let a request through with the token in its query (answered with a redirect that
        sets the cookie) or in its cookie; refuse it otherwise."""
        given = request.query.get(TOKEN_PARAM)
        name = cookie_name(self.port)
        if given is not None:
            if not token_matches(given, self.token):
                return web.Response(status=403, text=TOKEN_MESSAGE)
            rest = [(k, v) for k, v in request.query.items() if k != TOKEN_PARAM]
            location = local_location(request.path, rest)
            response = web.Response(status=303, headers={"Location": location})
            response.set_cookie(name, self.token, httponly=True, samesite="Strict", path="/")
            return response
        if not token_matches(request.cookies.get(name), self.token):
            return web.Response(status=403, text=TOKEN_MESSAGE)
        return await handler(request)

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page that opens a session, or a plain refusal when all sessions are in use."""
        if self.cap.full:
            return web.Response(status=503, text=sessions_full_message(self.cap.limit))
        scheme = "wss" if request.secure else "ws"
        font_size = request.query.get("fontsize", "16")
        page = _PAGE.format(
            title=html.escape(self.title),
            websocket=html.escape(f"{scheme}://{request.host}/ws"),
            font_size=html.escape(font_size if font_size.isdigit() else "16"),
        )
        # no-store also keeps the page out of the back/forward cache, where it would go on
        # holding its session (and its place under the cap) after the visitor browsed away.
        return web.Response(
            text=page, content_type="text/html", headers={"Cache-Control": "no-store"}
        )

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Start a studio session for this websocket, within the cap, at a bounded size; end
        its studio whenever and however the socket closes."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            # The cookie would ride along on a websocket opened by any page the user visits.
            raise web.HTTPForbidden(text=CROSS_SITE_MESSAGE)
        if not self.cap.try_acquire():
            return await self._refuse(request, sessions_full_message(self.cap.limit))
        websocket = web.WebSocketResponse(heartbeat=15)
        session = StudioSession(self.command, websocket, self)
        self._sessions.add(session)
        try:
            await websocket.prepare(request)
            await session.start(
                *terminal_size(request.query.get("width"), request.query.get("height"))
            )
            messages = asyncio.ensure_future(self._process_messages(websocket, session))
            waits: set[asyncio.Future[None]] = {messages}
            if session.reader is not None:
                waits.add(session.reader)
            try:
                # Until the tab goes away, or the studio does (then the tab is told).
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                messages.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await messages
        except ConnectionError as exc:
            log.warning("a browser tab went away while its studio started: %s", first_line(exc))
        except Exception as exc:  # one line in the log per failed session, never a traceback
            log.warning("a studio session failed: %s", first_line(exc) or type(exc).__name__)
        finally:
            try:
                await session.end()
                with contextlib.suppress(Exception):
                    await websocket.close()
            finally:
                self._sessions.discard(session)
                self.cap.release()
        return websocket

    async def _process_messages(  # type: ignore[override]
        self, websocket: web.WebSocketResponse, app_service: StudioSession
    ) -> None:
        """Pass the tab's keys, resizes, focus and pings on to the studio; skip anything that
        is not a well-formed message instead of failing the session."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = json.loads(message.data)
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(data.get("width"), data.get("height"))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()

    async def _refuse(self, request: web.Request, message: str) -> web.WebSocketResponse:
        """Show `message` in the page's terminal and keep the socket open, without a studio: a
        closed socket would cover the message with textual-serve's "session ended" dialog."""
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        await websocket.send_bytes(f"\r\n  {message}\r\n".encode())
        async for _ in websocket:
            pass  # the page's pings and keys are ignored until it goes away
        return websocket

    def run(self, on_listening: Callable[[int], None]) -> None:
        """Serve until SIGINT, SIGTERM or SIGHUP; `on_listening` gets the bound port (the real
        one when port 0 asked for a free port)."""
        self.initialize_logging()
        asyncio.run(self._serve(on_listening))

    async def build_app(self) -> web.Application:
        """textual-serve's routes (page, websocket, static files), behind the token check."""
        app = await self._make_app()
        app.middlewares.append(self.require_token)
        return app

    async def _serve(self, on_listening: Callable[[int], None]) -> None:
        app = await self.build_app()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, shutdown_timeout=SHUTDOWN_S)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc)
            raise PoetstudioError(f"cannot listen on {self.host}:{self.port}: {reason}") from None
        self.port = runner.addresses[0][1]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # SIGHUP too: a closed terminal must not leave studios running without their server.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, stop.set)
        on_listening(self.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
