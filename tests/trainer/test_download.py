"""Resumable downloads against a local HTTP server started by each test."""

from __future__ import annotations

import gzip
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.common.errors import PoetstudioError
from trainer.corpus.download import OFFLINE_HINT, download, gzip_line_count

BODY = gzip.compress(b"".join(b'{"s": "line %d", "gid": "1"}\n' % i for i in range(5000)))


class _Server:
    """Serves BODY at /c.ndjson.gz; `failures` answers with 500 first, `cut` drops mid-body."""

    def __init__(self) -> None:
        self.failures = 0
        self.cut = 0
        self.ranges: list[str | None] = []
        self.body = BODY
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.ranges.append(self.headers.get("Range"))
                if self.path != "/c.ndjson.gz":
                    self.send_error(404, "not here")
                    return
                if server.failures:
                    server.failures -= 1
                    self.send_error(500, "boom")
                    return
                start = 0
                if rng := self.headers.get("Range"):
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    total = len(server.body)
                    self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
                else:
                    self.send_response(200)
                payload = server.body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.cut:
                    server.cut -= 1
                    self.wfile.write(payload[: len(payload) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/c.ndjson.gz"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _fetch(url: str, dest: Path, **kwargs):
    return download(url, dest, retries=3, backoff=0, sleep=lambda _s: None, **kwargs)


def test_plain_download_checks_gzip_counts_lines_and_renames(server, tmp_path):
    seen: list[tuple[int, int | None]] = []
    result = _fetch(server.url, tmp_path / "c.ndjson.gz", progress=lambda d, t: seen.append((d, t)))
    assert (tmp_path / "c.ndjson.gz").read_bytes() == BODY
    assert not (tmp_path / "c.ndjson.gz.part").exists()
    assert result.lines == 5000
    assert seen[-1] == (len(BODY), len(BODY))


def test_resumes_a_part_file_with_http_range(server, tmp_path):
    (tmp_path / "c.ndjson.gz.part").write_bytes(BODY[:1000])
    result = _fetch(server.url, tmp_path / "c.ndjson.gz")
    assert server.ranges == ["bytes=1000-"]
    assert (tmp_path / "c.ndjson.gz").read_bytes() == BODY
    assert result.attempts == 1


def test_retries_after_http_500(server, tmp_path):
    server.failures = 2
    result = _fetch(server.url, tmp_path / "c.ndjson.gz")
    assert result.attempts == 3
    assert (tmp_path / "c.ndjson.gz").read_bytes() == BODY


def test_persistent_http_500_fails_and_keeps_nothing_as_complete(server, tmp_path):
    server.failures = 10
    with pytest.raises(PoetstudioError, match="HTTP 500"):
        _fetch(server.url, tmp_path / "c.ndjson.gz")
    assert not (tmp_path / "c.ndjson.gz").exists()


def test_connection_cut_mid_body_resumes_from_what_arrived(server, tmp_path):
    server.cut = 1
    result = _fetch(server.url, tmp_path / "c.ndjson.gz")
    assert result.attempts == 2
    assert server.ranges[0] is None
    assert server.ranges[1] is not None and server.ranges[1] != "bytes=0-"
    assert (tmp_path / "c.ndjson.gz").read_bytes() == BODY


def test_corrupt_gzip_body_is_refused_and_not_renamed(server, tmp_path):
    server.body = BODY[: len(BODY) // 2]
    with pytest.raises(PoetstudioError, match="not a complete gzip"):
        _fetch(server.url, tmp_path / "c.ndjson.gz")
    assert not (tmp_path / "c.ndjson.gz").exists()
    assert not (tmp_path / "c.ndjson.gz.part").exists()


def test_unreachable_url_hints_at_the_offline_mirror(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(PoetstudioError) as info:
        _fetch(f"http://127.0.0.1:{port}/x.ndjson.gz", tmp_path / "x.ndjson.gz")
    assert "cannot reach" in str(info.value)
    assert OFFLINE_HINT in str(info.value)


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(PoetstudioError, match="HTTP 404"):
        _fetch(server.url + "x", tmp_path / "y.gz")
    assert len(server.ranges) == 1


def test_gzip_line_count_on_a_good_file(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"a\nb\nc\n"))
    assert gzip_line_count(path) == 3
