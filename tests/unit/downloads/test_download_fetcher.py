"""Fetcher with httpx.MockTransport and a stub resolver: no network, no DNS."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from orchestrator.downloads import AddressPolicy, Fetcher, FetchResult, safe_name
from orchestrator.downloads.resolver import SystemResolver, ip_literal
from orchestrator.exceptions import (
    DownloadExpired,
    DownloadRefused,
    DownloadTransient,
)

PUBLIC_IP = "93.184.216.34"  # only ever handed to MockTransport
AUDIO = ["audio/*"]
BODY = b"ID3" + bytes(range(256)) * 40

Handler = Callable[[httpx.Request], httpx.Response]


class StubResolver:
    """Answers from a table (IP literals answer themselves); records every question."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        if host not in self.table:
            raise DownloadTransient(f"no such host {host!r}")
        return list(self.table[host])


class Recorder:
    """A MockTransport handler that records requests and delegates to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


class Env:
    def __init__(self, tmp_path: pathlib.Path, handler: Handler, **kwargs: object) -> None:
        self.recorder = Recorder(handler)
        self.client = httpx.Client(transport=httpx.MockTransport(self.recorder))
        self.resolver = StubResolver(
            {
                "files.example": [PUBLIC_IP],
                "cdn.example": ["2606:4700::1111"],
                "metadata.example": ["169.254.169.254"],
                "internal.example": ["10.0.0.7"],
                "mapped.example": ["::ffff:10.0.0.1"],
                "mixed.example": [PUBLIC_IP, "10.0.0.1"],
                "mixed6.example": ["2606:4700::1111", "fd00::1"],
                "loop.example": ["127.0.0.1"],
            }
        )
        self.fetcher = Fetcher(
            self.client,
            AddressPolicy([]),
            self.resolver,
            **kwargs,  # type: ignore[arg-type]
        )
        self.dest = tmp_path / "out" / "track.mp3"
        self.dir = self.dest.parent

    def fetch(self, url: str, types: list[str] | None = None) -> FetchResult:
        return self.fetcher.fetch(url, self.dest, allowed_types=types or AUDIO)

    def leftovers(self) -> list[str]:
        if not self.dir.exists():
            return []
        return sorted(p.name for p in self.dir.iterdir() if p.name.endswith(".part"))


@pytest.fixture
def make_env(tmp_path: pathlib.Path) -> Iterator[Callable[..., Env]]:
    envs: list[Env] = []

    def factory(handler: Handler, **kwargs: object) -> Env:
        env = Env(tmp_path, handler, **kwargs)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        env.client.close()


def ok(body: bytes = BODY, content_type: str = "audio/mpeg") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": content_type}, content=body)

    return handler


def never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"no request should reach the transport, got {request.url}")


# -- success -------------------------------------------------------------------------------


def test_success_writes_bytes_and_checksum(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    result = env.fetch("https://files.example/a/b.mp3?sig=secret")
    assert result.path == env.dest
    assert env.dest.read_bytes() == BODY
    assert result.bytes == len(BODY)
    assert result.sha256 == hashlib.sha256(BODY).hexdigest()
    assert result.content_type == "audio/mpeg"
    assert result.final_url == "https://files.example/a/b.mp3?sig=secret"
    assert env.leftovers() == []
    assert sorted(os.listdir(env.dir)) == ["track.mp3"]


def test_on_chunk_runs_per_chunk_and_what_it_raises_aborts_cleanly(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(ok())
    calls: list[int] = []
    env.fetcher.fetch(
        "https://files.example/x", env.dest, allowed_types=AUDIO, on_chunk=lambda: calls.append(1)
    )
    assert calls  # at least once per chunk written

    class Stop(Exception):
        pass

    def stop() -> None:
        raise Stop

    env.dest.unlink()
    with pytest.raises(Stop):
        env.fetcher.fetch("https://files.example/x", env.dest, allowed_types=AUDIO, on_chunk=stop)
    assert not env.dest.exists() and env.leftovers() == []


def test_success_replaces_an_existing_file(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    env.dir.mkdir(parents=True)
    env.dest.write_bytes(b"old")
    env.fetch("https://files.example/x")
    assert env.dest.read_bytes() == BODY


def test_replace_is_atomic_via_temp_file_in_same_dir(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(ok())
    seen: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    env.fetch("https://files.example/x")
    [(src, dst)] = seen
    assert pathlib.Path(src).parent == env.dir
    assert pathlib.Path(src).name.startswith(".track.mp3.")
    assert src.endswith(".part")
    assert dst == str(env.dest)


def test_content_type_parameters_and_case(make_env: Callable[..., Env]) -> None:
    env = make_env(ok(content_type="Audio/MPEG; charset=binary"))
    assert env.fetch("https://files.example/x").content_type == "audio/mpeg"


@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("image/jpeg", ["image/jpeg"]),
        ("video/mp4", ["audio/*", "video/mp4"]),
        ("application/octet-stream", ["application/octet-stream"]),
    ],
)
def test_allowed_type_patterns(
    make_env: Callable[..., Env], content_type: str, allowed: list[str]
) -> None:
    env = make_env(ok(content_type=content_type))
    assert env.fetch("https://files.example/x", allowed).content_type == content_type


def test_streamed_body_without_content_length(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = (BODY[i : i + 1000] for i in range(0, len(BODY), 1000))
        return httpx.Response(200, headers={"Content-Type": "audio/wav"}, content=chunks)

    env = make_env(handler)
    result = env.fetch("https://files.example/x")
    assert env.dest.read_bytes() == BODY
    assert result.bytes == len(BODY)


# -- pinning -------------------------------------------------------------------------------


def test_https_is_pinned_to_the_checked_address(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    env.fetch("https://files.example:8443/a.mp3?x=1")
    [request] = env.recorder.requests
    assert request.url.host == PUBLIC_IP
    assert request.url.port == 8443
    assert request.url.path == "/a.mp3"
    assert request.url.query == b"x=1"
    assert request.headers["host"] == "files.example:8443"
    assert request.extensions["sni_hostname"] == "files.example"
    assert env.resolver.calls == [("files.example", 8443)]


def test_http_is_pinned_without_sni(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    env.fetch("http://files.example/a.mp3")
    [request] = env.recorder.requests
    assert request.url.host == PUBLIC_IP
    assert request.headers["host"] == "files.example"
    assert "sni_hostname" not in request.extensions
    assert env.resolver.calls == [("files.example", 80)]


def test_ipv6_answer_is_pinned_in_brackets(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    env.fetch("https://cdn.example/a")
    [request] = env.recorder.requests
    assert request.url.host == "2606:4700::1111"
    assert str(request.url).startswith("https://[2606:4700::1111]/")
    assert request.headers["host"] == "cdn.example"


def test_idn_host_resolved_and_sent_as_punycode(make_env: Callable[..., Env]) -> None:
    env = make_env(ok())
    env.resolver.table["xn--bcher-kva.example"] = [PUBLIC_IP]
    env.fetch("https://bücher.example/a")
    [request] = env.recorder.requests
    assert request.headers["host"] == "xn--bcher-kva.example"
    assert request.extensions["sni_hostname"] == "xn--bcher-kva.example"


def test_no_client_credentials_or_cookies_leak(tmp_path: pathlib.Path) -> None:
    recorder = Recorder(ok())
    with httpx.Client(
        transport=httpx.MockTransport(recorder),
        headers={"Authorization": "Bearer api-key"},
        cookies={"session": "s3cret"},
        auth=("user", "pass"),
    ) as client:
        fetcher = Fetcher(client, AddressPolicy([]), StubResolver({"files.example": [PUBLIC_IP]}))
        fetcher.fetch("https://files.example/a", tmp_path / "a.mp3", allowed_types=AUDIO)
    [request] = recorder.requests
    assert "authorization" not in request.headers
    assert "cookie" not in request.headers
    assert request.headers["connection"] == "close"


def test_connect_failure_falls_back_to_the_next_checked_address(
    make_env: Callable[..., Env],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "1.1.1.1":
            raise httpx.ConnectError("connection refused")
        return ok()(request)

    env = make_env(handler)
    env.resolver.table["two.example"] = ["1.1.1.1", PUBLIC_IP]
    env.fetch("https://two.example/a")
    assert [r.url.host for r in env.recorder.requests] == ["1.1.1.1", PUBLIC_IP]
    assert all(r.headers["host"] == "two.example" for r in env.recorder.requests)


def test_connect_failure_on_every_address_is_transient(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    env = make_env(handler)
    env.resolver.table["two.example"] = ["1.1.1.1", PUBLIC_IP]
    with pytest.raises(DownloadTransient, match="any of 2"):
        env.fetch("https://two.example/a")
    assert len(env.recorder.requests) == 2


def test_read_failure_does_not_try_another_address(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    env = make_env(handler)
    env.resolver.table["two.example"] = ["1.1.1.1", PUBLIC_IP]
    with pytest.raises(DownloadTransient, match="ReadTimeout"):
        env.fetch("https://two.example/a")
    assert len(env.recorder.requests) == 1


# -- refused before any request ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://metadata.example/latest/meta-data", id="metadata-name"),
        pytest.param("http://169.254.169.254/latest/meta-data", id="metadata-literal"),
        pytest.param("http://internal.example/x", id="private-10"),
        pytest.param("http://mapped.example/x", id="mapped-private"),
        pytest.param("http://[::ffff:10.0.0.1]/x", id="mapped-literal"),
        pytest.param("http://mixed.example/x", id="mixed-good-bad"),
        pytest.param("http://mixed6.example/x", id="mixed-v6-ula"),
        pytest.param("http://loop.example/x", id="loopback-name"),
        pytest.param("http://[::1]:8080/x", id="v6-loopback-literal"),
        pytest.param("http://0.0.0.0/x", id="unspecified"),
    ],
)
def test_refused_addresses_never_reach_the_transport(
    make_env: Callable[..., Env], url: str
) -> None:
    env = make_env(never)
    with pytest.raises(DownloadRefused, match="refused address class"):
        env.fetch(url)
    assert env.recorder.requests == []
    assert env.leftovers() == []


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("ftp://files.example/a.mp3", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://files.example/", "scheme"),
        ("https://user:pass@files.example/a.mp3", "credentials"),
        ("https://user@files.example/a.mp3", "credentials"),
        ("https://:@files.example/a.mp3", "credentials"),
        ("http:///nohost", "host"),
        ("http://[::1/x", "malformed"),
    ],
)
def test_refused_urls(make_env: Callable[..., Env], url: str, match: str) -> None:
    env = make_env(never)
    with pytest.raises(DownloadRefused, match=match):
        env.fetch(url)
    assert env.recorder.requests == []
    assert env.resolver.calls == []


def test_resolution_failure_is_transient(make_env: Callable[..., Env]) -> None:
    env = make_env(never)
    with pytest.raises(DownloadTransient):
        env.fetch("https://unknown.example/x")


def test_empty_resolution_is_transient(make_env: Callable[..., Env]) -> None:
    env = make_env(never)
    env.resolver.table["empty.example"] = []
    with pytest.raises(DownloadTransient):
        env.fetch("https://empty.example/x")


# -- redirects -----------------------------------------------------------------------------


def redirecting(routes: dict[str, tuple[int, str]], final: Handler | None = None) -> Handler:
    """Redirect by Host+path from ``routes``; anything else gets ``final`` (default: audio)."""
    final = final or ok()

    def handler(request: httpx.Request) -> httpx.Response:
        key = f"{request.headers['host']}{request.url.path}"
        if key in routes:
            status, location = routes[key]
            return httpx.Response(status, headers={"Location": location})
        return final(request)

    return handler


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_followed_and_re_pinned(make_env: Callable[..., Env], status: int) -> None:
    env = make_env(redirecting({"files.example/a": (status, "https://cdn.example/b?t=1")}))
    result = env.fetch("http://files.example/a")
    assert result.final_url == "https://cdn.example/b?t=1"
    first, second = env.recorder.requests
    assert first.url.host == PUBLIC_IP
    assert second.url.host == "2606:4700::1111"
    assert second.headers["host"] == "cdn.example"
    assert second.extensions["sni_hostname"] == "cdn.example"
    assert env.dest.read_bytes() == BODY


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/c/d.mp3", "https://files.example/c/d.mp3"),
        ("d.mp3?x=2", "https://files.example/a/d.mp3?x=2"),
        ("../up.mp3", "https://files.example/up.mp3"),
        ("//cdn.example/e.mp3", "https://cdn.example/e.mp3"),
    ],
)
def test_relative_redirects_resolve_against_the_named_url(
    make_env: Callable[..., Env], location: str, expected: str
) -> None:
    env = make_env(redirecting({"files.example/a/b.mp3": (302, location)}))
    result = env.fetch("https://files.example/a/b.mp3")
    assert result.final_url == expected
    assert env.recorder.requests[1].headers["host"] == httpx.URL(expected).host


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.example/latest/meta-data",
        "http://internal.example/",
        "http://[::ffff:10.0.0.1]/",
        "http://mixed.example/",
        "http://[fd00::1]/",
    ],
)
def test_redirect_to_refused_address(make_env: Callable[..., Env], location: str) -> None:
    env = make_env(redirecting({"files.example/a": (302, location)}))
    with pytest.raises(DownloadRefused, match="refused address class"):
        env.fetch("https://files.example/a")
    assert len(env.recorder.requests) == 1
    assert env.leftovers() == []


@pytest.mark.parametrize(
    ("location", "match"),
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://files.example/a", "scheme"),
        ("gopher://files.example:70/_", "scheme"),
        ("https://u:p@files.example/b", "credentials"),
    ],
)
def test_redirect_to_forbidden_url(make_env: Callable[..., Env], location: str, match: str) -> None:
    env = make_env(redirecting({"files.example/a": (302, location)}))
    with pytest.raises(DownloadRefused, match=match):
        env.fetch("https://files.example/a")
    assert len(env.recorder.requests) == 1


def test_redirect_without_location(make_env: Callable[..., Env]) -> None:
    env = make_env(lambda r: httpx.Response(302))
    with pytest.raises(DownloadRefused, match="without Location"):
        env.fetch("https://files.example/a")


def test_redirect_loop_refused(make_env: Callable[..., Env]) -> None:
    env = make_env(
        redirecting({"files.example/a": (302, "/b"), "files.example/b": (302, "/a")}),
        max_redirects=5,
    )
    with pytest.raises(DownloadRefused, match="more than 5 redirects"):
        env.fetch("https://files.example/a")
    assert len(env.recorder.requests) == 6


def test_redirect_cap_is_inclusive(make_env: Callable[..., Env]) -> None:
    routes = {f"files.example/{i}": (302, f"/{i + 1}") for i in range(3)}
    env = make_env(redirecting(routes), max_redirects=3)
    assert env.fetch("https://files.example/0").final_url == "https://files.example/3"
    env2 = make_env(redirecting(routes), max_redirects=2)
    with pytest.raises(DownloadRefused, match="redirects"):
        env2.fetch("https://files.example/0")


def test_zero_redirects_allowed(make_env: Callable[..., Env]) -> None:
    env = make_env(redirecting({"files.example/a": (301, "/b")}), max_redirects=0)
    with pytest.raises(DownloadRefused, match="redirects"):
        env.fetch("https://files.example/a")


# -- size, type, status, body ----------------------------------------------------------------


def test_size_cap_by_content_length(make_env: Callable[..., Env]) -> None:
    env = make_env(ok(), max_bytes=len(BODY) - 1)
    with pytest.raises(DownloadRefused, match="Content-Length"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_size_cap_exact_is_fine(make_env: Callable[..., Env]) -> None:
    env = make_env(ok(), max_bytes=len(BODY))
    assert env.fetch("https://files.example/a").bytes == len(BODY)


def test_size_cap_by_stream(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = (b"x" * 1000 for _ in range(100))  # no Content-Length
        return httpx.Response(200, headers={"Content-Type": "audio/mpeg"}, content=chunks)

    env = make_env(handler, max_bytes=10_000)
    with pytest.raises(DownloadRefused, match="cap"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_size_cap_when_content_length_lies_low(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = (b"x" * 1000 for _ in range(100))
        return httpx.Response(
            200, headers={"Content-Type": "audio/mpeg", "Content-Length": "10"}, content=chunks
        )

    env = make_env(handler, max_bytes=10_000)
    with pytest.raises(DownloadRefused, match="cap"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []


@pytest.mark.parametrize(
    ("content_type", "allowed"),
    [
        ("text/html", AUDIO),
        ("", AUDIO),
        ("audio", AUDIO),
        ("image/png", ["image/jpeg"]),
        ("application/octet-stream", ["audio/*"]),
        ("audiox/mpeg", ["audio/*"]),
    ],
)
def test_bad_content_type(
    make_env: Callable[..., Env], content_type: str, allowed: list[str]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        return httpx.Response(200, headers=headers, content=b"<html>")

    env = make_env(handler)
    with pytest.raises(DownloadRefused, match="content type"):
        env.fetch("https://files.example/a", allowed)
    assert env.leftovers() == []
    assert not env.dest.exists()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, DownloadExpired),
        (404, DownloadExpired),
        (410, DownloadExpired),
        (408, DownloadTransient),
        (429, DownloadTransient),
        (500, DownloadTransient),
        (502, DownloadTransient),
        (503, DownloadTransient),
        (400, DownloadRefused),
        (401, DownloadRefused),
        (451, DownloadRefused),
        (204, DownloadRefused),
        (206, DownloadRefused),
        (304, DownloadRefused),
    ],
)
def test_status_mapping(make_env: Callable[..., Env], status: int, error: type[Exception]) -> None:
    env = make_env(lambda r: httpx.Response(status, headers={"Content-Type": "audio/mpeg"}))
    with pytest.raises(error):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("reset"),
    ],
)
def test_transport_errors_are_transient(
    make_env: Callable[..., Env], exc: httpx.TransportError
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    env = make_env(handler)
    with pytest.raises(DownloadTransient):
        env.fetch("https://files.example/a")


def test_error_mid_body_is_transient_and_cleans_up(make_env: Callable[..., Env]) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"x" * 1000
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "audio/mpeg"}, content=chunks())

    env = make_env(handler)
    with pytest.raises(DownloadTransient, match="ReadError"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_truncated_body_is_transient(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Type": "audio/mpeg", "Content-Length": str(len(BODY) + 10)},
            content=iter([BODY]),
        )

    env = make_env(handler)
    with pytest.raises(DownloadTransient, match="Content-Length"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_malformed_content_length_is_transient(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Type": "audio/mpeg", "Content-Length": "lots"},
            content=iter([BODY]),
        )

    env = make_env(handler)
    with pytest.raises(DownloadTransient, match="Content-Length"):
        env.fetch("https://files.example/a")


def test_failure_keeps_an_existing_destination(make_env: Callable[..., Env]) -> None:
    env = make_env(lambda r: httpx.Response(500))
    env.dir.mkdir(parents=True)
    env.dest.write_bytes(b"previous")
    with pytest.raises(DownloadTransient):
        env.fetch("https://files.example/a")
    assert env.dest.read_bytes() == b"previous"


def test_write_failure_is_transient_and_cleans_up(
    make_env: Callable[..., Env], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(ok())

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(DownloadTransient, match="No space"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_messages_never_contain_the_query(make_env: Callable[..., Env]) -> None:
    env = make_env(lambda r: httpx.Response(404))
    with pytest.raises(DownloadExpired) as info:
        env.fetch("https://files.example/a.mp3?X-Signature=topsecret")
    assert "topsecret" not in str(info.value)
    assert "files.example" in str(info.value)


# -- deadline ------------------------------------------------------------------------------


class StepClock:
    """Each reading is ``step`` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


def test_deadline_while_streaming(make_env: Callable[..., Env]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = (b"x" * 100 for _ in range(50))
        return httpx.Response(200, headers={"Content-Type": "audio/mpeg"}, content=chunks)

    env = make_env(handler, timeout_s=25.0, clock=StepClock(10.0))
    with pytest.raises(DownloadTransient, match="longer than 25 s"):
        env.fetch("https://files.example/a")
    assert env.leftovers() == []
    assert not env.dest.exists()


def test_deadline_across_redirects(make_env: Callable[..., Env]) -> None:
    routes = {f"files.example/{i}": (302, f"/{i + 1}") for i in range(4)}
    env = make_env(redirecting(routes), timeout_s=25.0, clock=StepClock(10.0))
    with pytest.raises(DownloadTransient, match="longer than"):
        env.fetch("https://files.example/0")
    assert len(env.recorder.requests) == 2


def test_request_timeout_never_exceeds_what_remains(make_env: Callable[..., Env]) -> None:
    env = make_env(ok(), timeout_s=30.0, clock=StepClock(10.0))
    env.fetch("https://files.example/a")
    [request] = env.recorder.requests
    timeouts = request.extensions["timeout"]
    assert set(timeouts) == {"connect", "read", "write", "pool"}
    assert all(value == 5.0 for value in timeouts.values())  # client default 5 s < 20 s left


def test_request_timeout_capped_by_deadline(make_env: Callable[..., Env]) -> None:
    env = make_env(ok(), timeout_s=4.0, clock=StepClock(1.0))
    env.fetch("https://files.example/a")
    timeouts = env.recorder.requests[0].extensions["timeout"]
    assert all(value == 3.0 for value in timeouts.values())


# -- constructor -----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"timeout_s": 0.0}, {"max_redirects": -1}])
def test_constructor_validates(kwargs: dict[str, float]) -> None:
    with httpx.Client(transport=httpx.MockTransport(never)) as client, pytest.raises(ValueError):
        Fetcher(client, AddressPolicy([]), **kwargs)  # type: ignore[arg-type]


def test_allowed_types_must_not_be_a_bare_string(make_env: Callable[..., Env]) -> None:
    env = make_env(never)
    with pytest.raises(TypeError):
        env.fetcher.fetch("https://files.example/a", env.dest, allowed_types="audio/*")


# -- safe_name -------------------------------------------------------------------------------


def test_safe_name_keeps_safe_identifiers() -> None:
    assert safe_name("abc-123_X.v2", "mp3") == "abc-123_X.v2.mp3"
    assert safe_name("abc", ".MP3") == "abc.mp3"


@pytest.mark.parametrize(
    "identifier",
    [
        "../../etc/passwd",
        "..",
        ".",
        "",
        "...",
        ".hidden",
        "a/b",
        "a\\b",
        "a\x00b",
        "日本語",
        "Café ☕",
        "x" * 500,
        "/" * 300,
        " ",
        "a\nb",
    ],
)
def test_safe_name_is_safe(identifier: str) -> None:
    name = safe_name(identifier, "mp3")
    assert name.endswith(".mp3")
    assert 0 < len(name) <= 100
    assert name not in {".", ".."}
    assert not name.startswith(".")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert pathlib.Path(name).name == name


def test_safe_name_traversal() -> None:
    name = safe_name("../../etc/passwd", "mp3")
    assert name.startswith("_.._etc_passwd-")
    assert name.endswith(".mp3")


def test_safe_name_collapses_runs() -> None:
    assert safe_name("a//  b", "png").startswith("a_b-")


def test_safe_name_changed_identifiers_do_not_collide() -> None:
    assert safe_name("a/b", "mp3") != safe_name("a_b", "mp3")
    assert safe_name("a/b", "mp3") != safe_name("a:b", "mp3")
    assert safe_name("x" * 200, "mp3") != safe_name("x" * 201, "mp3")
    assert safe_name("a/b", "mp3") == safe_name("a/b", "mp3")


def test_safe_name_length_cap() -> None:
    assert len(safe_name("x" * 96, "mp3")) == 100
    assert safe_name("x" * 96, "mp3") == "x" * 96 + ".mp3"
    long = safe_name("x" * 97, "mp3")
    assert len(long) == 100
    assert long.endswith(".mp3")


def test_safe_name_empty() -> None:
    assert safe_name("", "jpg").startswith("file-")


@pytest.mark.parametrize("ext", ["exe", "sh", "", "mp3/../x", "html", "MP3.exe"])
def test_safe_name_refuses_extensions(ext: str) -> None:
    with pytest.raises(DownloadRefused, match="extension"):
        safe_name("abc", ext)


@pytest.mark.parametrize("ext", ["mp3", "jpeg", "jpg", "png", "mp4", "wav", "webp", "JPG"])
def test_safe_name_allowed_extensions(ext: str) -> None:
    assert safe_name("abc", ext) == f"abc.{ext.lower()}"


# -- SystemResolver --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "127.0.0.1"), ("::1", "::1"), ("[::1]", "::1"), ("10.0.0.1", "10.0.0.1")],
)
def test_system_resolver_literals_skip_dns(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: str
) -> None:
    def no_dns(*args: object, **kwargs: object) -> object:
        raise AssertionError("getaddrinfo must not be called for a literal")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert SystemResolver().resolve(host, 80) == [expected]


def test_system_resolver_dedupes_both_families(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:4700::1111", 443, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    assert SystemResolver().resolve("files.example", 443) == ["93.184.216.34", "2606:4700::1111"]


def test_system_resolver_failure_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    def gai_error(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", gai_error)
    with pytest.raises(DownloadTransient, match="could not resolve"):
        SystemResolver().resolve("nowhere.example", 443)


# -- inline (a text result the orchestrator made into a data: URL) ----------------------------

LYRICS = "[Verse]\nrain on the roof, é".encode()
INLINE = "data:text/plain;charset=utf-8;base64," + base64.b64encode(LYRICS).decode()


def test_an_inline_result_is_written_like_a_download_without_network(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(never)
    result = env.fetcher.fetch(INLINE, env.dest, allowed_types=["text/plain"], inline=True)
    assert env.dest.read_bytes() == LYRICS and result.bytes == len(LYRICS)
    assert result.sha256 == hashlib.sha256(LYRICS).hexdigest()
    assert result.content_type == "text/plain" and env.leftovers() == []


@pytest.mark.parametrize(
    ("url", "inline", "types", "match"),
    [
        (INLINE, False, ["text/plain"], "scheme 'data'"),  # only when the caller asks
        ("https://files.example/a.txt", True, ["text/plain"], "base64 data: URL"),
        ("data:text/plain,plain%20text", True, ["text/plain"], "base64 data: URL"),
        ("data:text/plain;base64,@@@", True, ["text/plain"], "not base64"),
        (INLINE.replace("text/plain", "text/html"), True, ["text/plain"], "content type"),
        ("data:text/plain;base64," + "QUFB" * 100, True, ["text/plain"], "cap"),
    ],
)
def test_a_bad_inline_result_is_refused(
    make_env: Callable[..., Env], url: str, inline: bool, types: list[str], match: str
) -> None:
    env = make_env(never, max_bytes=200)
    with pytest.raises(DownloadRefused, match=match):
        env.fetcher.fetch(url, env.dest, allowed_types=types, inline=inline)
    assert not env.dest.exists()
