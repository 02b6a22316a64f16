"""What `poetstudio serve` lets in: the access token, the session cap, the exposure warning and the
URL it prints. Pure policy, with no web server in it, so every rule is testable without a browser.

textual-serve itself has no authentication and no limit: it starts one studio process (and so one
model) per browser tab that opens its websocket. The server in studio.core.webserver applies
these rules in front of it.
"""

from __future__ import annotations

import hmac
import importlib.util
import ipaddress
import os
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

from trainer.common.errors import PoetstudioError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Each session is a studio process with its own model: a handful fits in an ordinary machine's
# memory (see the README's measured figure per session).
DEFAULT_MAX_SESSIONS = 4
# More sessions than this would need tens of GB for their models: a typo, not a plan.
MAX_SESSIONS = 64
# The terminal a browser may ask for: larger than any screen shows, small enough that a studio
# draws its frames in bounded time and memory (a 3000x3000 frame is tens of MB per refresh).
MAX_COLUMNS = 500
MAX_ROWS = 200
DEFAULT_SIZE = (80, 24)
TOKEN_PARAM = "token"
WEB_HINT = "pip install -e '.[web]'"
# What a session's studio runs before the CLI: tie its life to the server's.
STUDIO_BOOT = "from trainer.common.lifeline import die_with_parent; die_with_parent"


def web_available() -> bool:
    """Whether textual-serve (the `web` extra) is installed."""
    return importlib.util.find_spec("textual_serve") is not None


def cookie_name(port: int) -> str:
    """The cookie that carries the token after the first visit: cookies ignore the port, so two
    servers on one host need names of their own."""
    return f"poetstudio_token_{port}"


def new_token() -> str:
    """A fresh random token, safe to put in a URL as it is."""
    return secrets.token_urlsafe(16)


def check_token(token: str) -> str:
    """`token` stripped, or a one-line error when it cannot work as a token."""
    token = token.strip()
    if not token:
        raise PoetstudioError("--token must not be empty (leave it out to get a random one)")
    if any(ch.isspace() for ch in token):
        raise PoetstudioError("--token must not contain spaces")
    return token


def token_matches(given: str | None, token: str) -> bool:
    """Whether the token a request carried is the server's, compared in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def check_max_sessions(count: int) -> int:
    """`count`, or a one-line error when it is below one or beyond MAX_SESSIONS."""
    if not 1 <= count <= MAX_SESSIONS:
        raise PoetstudioError(
            f"--max-sessions must be between 1 and {MAX_SESSIONS} (each session runs its own "
            f"studio and model), not {count}"
        )
    return count


def check_host(host: str) -> str:
    """`host` stripped, or a one-line error when it is blank: an empty bind address would
    listen on every interface while the printed URL named no host at all."""
    host = host.strip()
    if not host:
        raise PoetstudioError(
            "--host must not be empty: leave it out for 127.0.0.1 (this machine only), "
            "or give 0.0.0.0 to listen on every interface"
        )
    return host


def terminal_size(width: object, height: object) -> tuple[int, int]:
    """The terminal size to give a studio for a browser's `width` and `height` (query values
    or resize fields): decimal integers, clamped to 1..MAX_COLUMNS by 1..MAX_ROWS; the default
    80x24 for a value that is missing or not a number."""
    return (
        _bounded(width, DEFAULT_SIZE[0], MAX_COLUMNS),
        _bounded(height, DEFAULT_SIZE[1], MAX_ROWS),
    )


def _bounded(value: object, default: int, largest: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.strip().isdigit():
        number = int(value.strip()[:9])  # any longer number is past the bound anyway
    else:
        return default
    return min(max(number, 1), largest)


def local_location(path: str, query: list[tuple[str, str]]) -> str:
    """A redirect target on this server for request path `path` (decoded) plus `query`.

    Browsers read a Location of `//host/...` or `/\\host/...` (or with tabs or newlines in
    between, which they drop) as another site: so any run of leading slashes, backslashes and
    control characters becomes one slash, and the rest is percent-encoded."""
    rest = path.lstrip("/\\\x00\t\n\r\x0b\x0c ")
    location = "/" + quote(rest, safe="/:@!$&'()*+,;=-._~")
    return location + (f"?{urlencode(query)}" if query else "")


def is_local_host(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine alone."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_warning(host: str, port: int, home: Path) -> str | None:
    """The warning printed when `host` is not a loopback address; None when it is."""
    if is_local_host(host):
        return None
    return (
        f"--host {host} serves the studio beyond this machine: anyone who reaches port {port} "
        f"and has the token can run training jobs and write files in the data home {home}; "
        "the page is plain HTTP, so the token crosses the network unencrypted"
    )


def serve_url(host: str, port: int, token: str) -> str:
    """The address to open, token included. A wildcard bind is shown as this machine's name."""
    shown = host.strip("[]")
    try:
        address = ipaddress.ip_address(shown)
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        shown = socket.gethostname()
    elif address is not None and address.version == 6:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?{TOKEN_PARAM}={quote(token, safe='')}"


def studio_command(
    home: Path, device: str | None, precision: str, parent: int | None = None
) -> str:
    """The shell command textual-serve runs for each session: this interpreter's studio, in
    place of the shell (exec), so that the session's process is the studio itself. The studio
    first ties its life to `parent` (this server's pid by default): it dies when the server
    does, even by kill -9."""
    parent = os.getpid() if parent is None else parent
    code = f"{STUDIO_BOOT}({parent}); from studio.cli import main; main()"
    args = [sys.executable, "-c", code, "--home", str(home), "--precision", precision]
    if device is not None:
        args += ["--device", device]
    return f"exec {shlex.join(args)}"


def sessions_full_message(max_sessions: int) -> str:
    """What a visitor past the cap is told."""
    plural = "session is" if max_sessions == 1 else "sessions are"
    return (
        f"poetstudio serve: all {max_sessions} {plural} in use (--max-sessions {max_sessions}); "
        "close another studio tab, then reload this page"
    )


TOKEN_MESSAGE = (
    "poetstudio serve: this page needs the token that `poetstudio serve` printed; "
    "open the full address it printed (it ends in ?token=...)"
)


@dataclass
class SessionCap:
    """How many studio sessions run at once, and at most how many may."""

    limit: int
    active: int = 0

    def try_acquire(self) -> bool:
        """Take a place for a new session; False when all are in use."""
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        """Give back the place of a session that ended."""
        self.active = max(0, self.active - 1)

    @property
    def full(self) -> bool:
        """Whether a new session would be refused now."""
        return self.active >= self.limit
