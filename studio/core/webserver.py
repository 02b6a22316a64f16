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
import html
import logging
import signal
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from textual_serve.server import Server

from studio.core.serving import (
    TOKEN_MESSAGE,
    TOKEN_PARAM,
    SessionCap,
    cookie_name,
    sessions_full_message,
    token_matches,
)
from trainer.common.errors import PoetstudioError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# How long stopping the server waits for the sessions' studios to quit.
SHUTDOWN_S = 10.0
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


class StudioServer(Server):
    """Serves `command` (the studio) to browsers holding `token`, at most `max_sessions` at once."""

    def __init__(
        self, command: str, host: str, port: int, token: str, max_sessions: int, title: str
    ) -> None:
        super().__init__(command, host=host, port=port, title=title)
        self.token = token
        self.cap = SessionCap(max_sessions)
        self._sessions: set[asyncio.Task[object]] = set()

    def initialize_logging(self) -> None:
        """Warnings only: textual-serve's info lines would bury the address printed at start."""
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")

    async def on_startup(self, app: web.Application) -> None:
        """Print nothing: `run` announces the address once the port is bound."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Cancel the open sessions, so that their studios are told to quit."""
        for task in list(self._sessions):
            task.cancel()

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
            location = request.path + (f"?{urlencode(rest)}" if rest else "")
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
        """Start a studio session for this websocket, within the cap."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            # The cookie would ride along on a websocket opened by any page the user visits.
            raise web.HTTPForbidden(text=CROSS_SITE_MESSAGE)
        if not self.cap.try_acquire():
            return await self._refuse(request, sessions_full_message(self.cap.limit))
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self._sessions.discard(task)
            self.cap.release()

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
        """Serve until SIGINT or SIGTERM; `on_listening` gets the bound port (the real one when
        port 0 asked for a free port)."""
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
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        on_listening(self.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
