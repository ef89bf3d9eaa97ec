"""The fetcher over real HTTP against a tiny server on 127.0.0.1.

A guard transport fails the test if anything but a loopback address is ever connected to.
"""

from __future__ import annotations

import hashlib
import http.server
import pathlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from orchestrator.downloads import AddressPolicy, Fetcher, SystemResolver
from orchestrator.exceptions import DownloadRefused, DownloadTransient

BODY = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB
LOOPBACK = {"127.0.0.1", "::1"}


@dataclass
class Server:
    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _handler_class(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.seen.append((self.path, self.headers.get("Host", "")))
            if self.path == "/audio.mp3":
                self._send(200, {"Content-Type": "audio/mpeg"}, BODY)
            elif self.path == "/to-metadata":
                location = "http://169.254.169.254/latest/meta-data"
                self._send(302, {"Location": location}, b"")
            elif self.path == "/to-localhost":
                location = f"http://localhost:{server.port}/audio.mp3"
                self._send(302, {"Location": location}, b"")
            elif self.path == "/relative":
                self._send(301, {"Location": "audio.mp3"}, b"")
            elif self.path == "/truncated":
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY[:1000])
                self.close_connection = True
            else:
                self._send(404, {"Content-Type": "text/plain"}, b"gone")

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


class LoopbackOnly(httpx.BaseTransport):
    """Delegates to a real transport, refusing (and recording) anything not loopback."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.hosts: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        assert request.url.host in LOOPBACK, f"test tried to connect to {request.url.host}"
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(port=0)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def transport() -> Iterator[LoopbackOnly]:
    guard = LoopbackOnly()
    yield guard
    guard.close()


def make_fetcher(transport: LoopbackOnly, allowed: list[str]) -> tuple[Fetcher, httpx.Client]:
    client = httpx.Client(transport=transport, timeout=5.0)
    return Fetcher(client, AddressPolicy(allowed), SystemResolver(), timeout_s=10.0), client


def test_fetch_from_allowlisted_loopback(
    server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path
) -> None:
    fetcher, client = make_fetcher(transport, ["127.0.0.0/8"])
    with client:
        dest = tmp_path / "media" / "a.mp3"
        result = fetcher.fetch(server.url("/audio.mp3"), dest, allowed_types=["audio/*"])
    assert dest.read_bytes() == BODY
    assert result.sha256 == hashlib.sha256(BODY).hexdigest()
    assert result.bytes == len(BODY)
    assert server.seen == [("/audio.mp3", f"127.0.0.1:{server.port}")]
    assert [p.name for p in dest.parent.iterdir()] == ["a.mp3"]


def test_loopback_refused_without_allowlist(
    server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path
) -> None:
    fetcher, client = make_fetcher(transport, [])
    with client, pytest.raises(DownloadRefused, match="loopback"):
        fetcher.fetch(server.url("/audio.mp3"), tmp_path / "a.mp3", allowed_types=["audio/*"])
    assert transport.hosts == []
    assert server.seen == []
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_metadata_refused_without_contacting_it(
    server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path
) -> None:
    fetcher, client = make_fetcher(transport, ["127.0.0.0/8"])
    with client, pytest.raises(DownloadRefused, match="link-local"):
        fetcher.fetch(server.url("/to-metadata"), tmp_path / "a.mp3", allowed_types=["audio/*"])
    assert transport.hosts == ["127.0.0.1"]
    assert server.seen == [("/to-metadata", f"127.0.0.1:{server.port}")]
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_localhost_is_re_resolved_and_allowed(
    server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path
) -> None:
    # localhost may also resolve to ::1, and every answer must pass the policy.
    fetcher, client = make_fetcher(transport, ["127.0.0.0/8", "::1/128"])
    with client:
        result = fetcher.fetch(
            server.url("/to-localhost"), tmp_path / "a.mp3", allowed_types=["audio/*"]
        )
    assert result.final_url == server.url("/audio.mp3", host="localhost")
    assert (tmp_path / "a.mp3").read_bytes() == BODY
    assert server.seen[-1] == ("/audio.mp3", f"localhost:{server.port}")
    assert set(transport.hosts) <= LOOPBACK


def test_relative_redirect(server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path) -> None:
    fetcher, client = make_fetcher(transport, ["127.0.0.0/8"])
    with client:
        result = fetcher.fetch(
            server.url("/relative"), tmp_path / "a.mp3", allowed_types=["audio/*"]
        )
    assert result.final_url == server.url("/audio.mp3")
    assert [path for path, _ in server.seen] == ["/relative", "/audio.mp3"]


def test_truncated_body_is_transient_and_leaves_nothing(
    server: Server, transport: LoopbackOnly, tmp_path: pathlib.Path
) -> None:
    fetcher, client = make_fetcher(transport, ["127.0.0.0/8"])
    with client, pytest.raises(DownloadTransient):
        fetcher.fetch(server.url("/truncated"), tmp_path / "a.mp3", allowed_types=["audio/*"])
    assert list(tmp_path.iterdir()) == []
