"""Download one artifact over HTTP(S), safely, into a file chosen by the caller.

Threat model
------------
The URLs we download come from the upstream's answers and from callbacks; an attacker who
forges a callback, or who controls a host the upstream points at, controls the URL, every
redirect, the DNS answers for their own names, and the response. Used naively, that turns the
daemon into a proxy into our own network (SSRF): the cloud metadata service, admin ports on
loopback, internal services on private addresses.

So the fetcher:

* accepts only ``http`` and ``https`` URLs without ``user:pass@`` userinfo;
* resolves the host itself and checks *every* address against the
  :class:`~orchestrator.downloads.addresses.AddressPolicy` (one bad answer refuses the URL);
* pins the connection to the address it checked: the request goes to the IP literal with the
  original ``Host`` header, and for https ``sni_hostname`` makes TLS present and verify the
  real name. httpx never resolves the name again, so there is no DNS-rebinding window;
* follows redirects itself, each one checked by all the rules above, at most
  ``max_redirects`` times;
* caps the body at ``max_bytes`` and the whole exchange at ``timeout_s``, and accepts only
  the expected content types;
* sends nothing of the injected client's own (default headers, cookies, auth), so an API key
  configured on a shared client never reaches a download host, and asks for
  ``Connection: close`` so no pooled connection, keyed by IP, is reused for another name;
* writes to a temporary file next to ``dest`` and renames it into place only when complete.

A text result the upstream gave inline (lyrics) reaches the downloader as a ``data:`` URL the
orchestrator made itself; it is written the same way, with no network at all, and only when
the caller asks for it (``inline=True``): a ``data:`` URL in an upstream answer is refused.

Refusals are :class:`DownloadRefused`, expired URLs :class:`DownloadExpired`, everything worth
retrying :class:`DownloadTransient`. Messages name the host, never the full URL: presigned
URLs carry credentials in their query string.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import pathlib
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass

import httpx

from orchestrator import faultpoints
from orchestrator.downloads.addresses import AddressPolicy
from orchestrator.downloads.resolver import Resolver, SystemResolver
from orchestrator.exceptions import DownloadExpired, DownloadRefused, DownloadTransient

_SCHEMES = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_OK_STATUSES = frozenset({200, 203})
_EXPIRED_STATUSES = frozenset({403, 404, 410})
_TRANSIENT_4XX = frozenset({408, 429})
_USER_AGENT = "orchestrator-fetcher"


@dataclass(frozen=True)
class FetchResult:
    """A completed download."""

    path: pathlib.Path  #: where the file now is (the caller's ``dest``)
    bytes: int  #: body length written
    sha256: str  #: hex digest of what was written
    content_type: str  #: media type of the response, lowercase, without parameters
    final_url: str  #: the URL that answered 200, after redirects


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def _type_allowed(media_type: str, allowed_types: Sequence[str]) -> bool:
    if not media_type or "/" not in media_type:
        return False
    major = media_type.split("/", 1)[0]
    for pattern in allowed_types:
        pattern = pattern.strip().lower()
        if pattern in ("*/*", media_type) or pattern == f"{major}/*":
            return True
    return False


def _describe(url: httpx.URL) -> str:
    """Scheme and host for messages: never the path or query (presigned credentials)."""
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _wire_length(response: httpx.Response, decoded: int) -> int:
    """Body bytes as sent, to compare with Content-Length (which counts encoded bytes)."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return decoded if encoding in ("", "identity") else response.num_bytes_downloaded


def _fsync_directory(directory: pathlib.Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    fd = os.open(directory, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Fetcher:
    """Fetches URLs into files under the SSRF rules described in the module docstring.

    ``client`` is used only for its transport and connection pool; give the fetcher its own
    client (its cookie jar would otherwise see download responses). Its ``timeout`` is
    respected but never allowed to exceed what remains of ``timeout_s``. The body is asked
    for with ``Accept-Encoding: identity``; if a server compresses anyway, the decoded bytes
    are stored and counted against ``max_bytes``. Files are created with mode 0600.
    """

    def __init__(
        self,
        client: httpx.Client,
        policy: AddressPolicy,
        resolver: Resolver | None = None,
        *,
        max_bytes: int = 512 * 1024 * 1024,
        timeout_s: float = 300.0,
        max_redirects: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must not be negative")
        self._client = client
        self._policy = policy
        self._resolver: Resolver = resolver if resolver is not None else SystemResolver()
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._max_redirects = max_redirects
        self._clock = clock

    def fetch(
        self,
        url: str,
        dest: pathlib.Path,
        *,
        allowed_types: Sequence[str],
        on_chunk: Callable[[], None] | None = None,
        inline: bool = False,
    ) -> FetchResult:
        """Download ``url`` into ``dest`` (replaced atomically), or raise a DownloadError.

        ``on_chunk`` is called after each chunk is written (a caller renews its lease there;
        whatever it raises aborts the download and removes the temporary file). ``inline``
        accepts a base64 ``data:`` URL (and nothing else).
        """
        if isinstance(allowed_types, str):
            raise TypeError("allowed_types must be a sequence of media types, not a string")
        deadline = self._clock() + self._timeout_s
        if inline:
            return self._inline(url, dest, allowed_types, deadline)
        try:
            current = self._validate(httpx.URL(url))
        except httpx.InvalidURL as exc:
            raise DownloadRefused("refused: malformed URL") from exc
        redirects = 0
        while True:
            response = self._send(current, self._checked_addresses(current), deadline)
            try:
                if response.status_code in _REDIRECT_STATUSES:
                    if redirects >= self._max_redirects:
                        raise DownloadRefused(
                            f"{_describe(current)}: more than {self._max_redirects} redirects"
                        )
                    current = self._redirect_target(current, response)
                    redirects += 1
                    continue
                self._check_status(current, response)
                content_type = _media_type(response.headers.get("content-type"))
                if not _type_allowed(content_type, allowed_types):
                    raise DownloadRefused(
                        f"{_describe(current)}: content type {content_type or '(none)'!r} "
                        f"not in {list(allowed_types)!r}"
                    )
                expected = self._content_length(current, response)
                written, digest = self._write(response, dest, deadline, expected, current, on_chunk)
            finally:
                response.close()
            return FetchResult(
                path=dest,
                bytes=written,
                sha256=digest,
                content_type=content_type,
                final_url=str(current),
            )

    def _inline(
        self, url: str, dest: pathlib.Path, allowed_types: Sequence[str], deadline: float
    ) -> FetchResult:
        """A ``data:<type>[;params];base64,<payload>`` URL, written like a download."""
        head, comma, payload = url.partition(",")
        parts = head.removeprefix("data:").split(";")
        if not url.startswith("data:") or not comma or parts[-1] != "base64":
            raise DownloadRefused("refused: an inline result must be a base64 data: URL")
        content_type = parts[0].strip().lower()
        if not _type_allowed(content_type, allowed_types):
            raise DownloadRefused(f"inline: content type {content_type or '(none)'!r} refused")
        if len(payload) > (self._max_bytes + 2) * 4 // 3 + 4:
            raise DownloadRefused(f"inline: over the {self._max_bytes}-byte cap")
        try:
            body = base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise DownloadRefused("refused: an inline result that is not base64") from exc
        response = httpx.Response(200, content=body, headers={"content-type": content_type})
        where = httpx.URL("data://inline/")
        written, digest = self._write(response, dest, deadline, len(body), where)
        return FetchResult(dest, written, digest, content_type, "data:")

    # -- URL rules ---------------------------------------------------------------------------

    def _validate(self, url: httpx.URL) -> httpx.URL:
        if url.scheme not in _SCHEMES:
            raise DownloadRefused(f"refused: scheme {url.scheme!r} (only http and https)")
        if url.userinfo:
            raise DownloadRefused(f"refused: credentials in URL for host {url.host!r}")
        if not url.raw_host:
            raise DownloadRefused("refused: URL without a host")
        return url

    def _redirect_target(self, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("location")
        if not location:
            raise DownloadRefused(
                f"{_describe(current)}: redirect {response.status_code} without Location"
            )
        try:
            target = current.join(location)
        except httpx.InvalidURL as exc:
            raise DownloadRefused(f"{_describe(current)}: malformed redirect Location") from exc
        return self._validate(target)

    # -- resolution and pinning ----------------------------------------------------------------

    def _checked_addresses(self, url: httpx.URL) -> list[str]:
        """Every address the host resolves to, each one checked; one refusal refuses all."""
        host = url.raw_host.decode("ascii")
        port = url.port if url.port is not None else _SCHEMES[url.scheme]
        addresses = self._resolver.resolve(host, port)
        if not addresses:
            raise DownloadTransient(f"host {host!r} resolved to no address")
        for address in addresses:
            try:
                self._policy.check(address)
            except DownloadRefused as exc:
                raise DownloadRefused(f"host {host!r}: {exc}") from exc
        return addresses

    def _send(self, url: httpx.URL, addresses: list[str], deadline: float) -> httpx.Response:
        """Send to the checked addresses in turn until one accepts the connection."""
        failure: httpx.TransportError | None = None
        for ip in addresses:
            request = self._pinned_request(url, ip, self._remaining(deadline))
            try:
                return self._client.send(request, stream=True, follow_redirects=False, auth=None)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc  # nothing was sent: the next checked address may answer
            except httpx.TransportError as exc:
                raise DownloadTransient(
                    f"{_describe(url)}: {type(exc).__name__} before a response"
                ) from exc
        raise DownloadTransient(
            f"{_describe(url)}: could not connect to any of {len(addresses)} address(es)"
        ) from failure

    def _pinned_request(self, url: httpx.URL, ip: str, remaining: float) -> httpx.Request:
        """A GET to ``ip`` carrying ``url``'s name in Host (and in SNI for https)."""
        host = url.raw_host.decode("ascii")
        extensions: dict[str, object] = {"timeout": self._timeout(remaining)}
        if url.scheme == "https":
            extensions["sni_hostname"] = host
        try:
            pinned = url.copy_with(host=ip, fragment=None)
        except httpx.InvalidURL as exc:
            raise DownloadRefused(f"host {host!r}: address not usable in a URL") from exc
        return httpx.Request(
            "GET",
            pinned,
            headers={
                "Host": url.netloc.decode("ascii"),
                "Accept-Encoding": "identity",
                "Connection": "close",
                "User-Agent": _USER_AGENT,
            },
            extensions=extensions,
        )

    def _timeout(self, remaining: float) -> dict[str, float]:
        configured = self._client.timeout.as_dict()
        result: dict[str, float] = {}
        for key in ("connect", "read", "write", "pool"):
            value = configured.get(key)
            result[key] = min(remaining, value if value is not None else math.inf)
        return result

    def _remaining(self, deadline: float) -> float:
        """Seconds left before ``deadline``; :class:`DownloadTransient` once it has passed."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise DownloadTransient(f"download took longer than {self._timeout_s:g} s")
        return remaining

    # -- response rules ----------------------------------------------------------------------

    @staticmethod
    def _check_status(url: httpx.URL, response: httpx.Response) -> None:
        status = response.status_code
        if status in _OK_STATUSES:
            return
        where = _describe(url)
        if status in _EXPIRED_STATUSES:
            raise DownloadExpired(f"{where}: HTTP {status}, the URL has expired")
        if status in _TRANSIENT_4XX or 500 <= status <= 599:
            raise DownloadTransient(f"{where}: HTTP {status}")
        raise DownloadRefused(f"{where}: unexpected HTTP {status}")

    def _content_length(self, url: httpx.URL, response: httpx.Response) -> int | None:
        raw = response.headers.get("content-length")
        if raw is None:
            return None
        try:
            length = int(raw.strip())
        except ValueError:
            raise DownloadTransient(f"{_describe(url)}: malformed Content-Length") from None
        if length < 0:
            raise DownloadTransient(f"{_describe(url)}: malformed Content-Length")
        if length > self._max_bytes:
            raise DownloadRefused(
                f"{_describe(url)}: Content-Length {length} over the {self._max_bytes}-byte cap"
            )
        return length

    # -- writing -----------------------------------------------------------------------------

    def _write(
        self,
        response: httpx.Response,
        dest: pathlib.Path,
        deadline: float,
        expected: int | None,
        url: httpx.URL,
        on_chunk: Callable[[], None] | None = None,
    ) -> tuple[int, str]:
        """Stream the body into a temp file beside ``dest`` and rename it into place."""
        where = _describe(url)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{dest.name}.", suffix=".part", dir=dest.parent
            )
        except OSError as exc:
            raise DownloadTransient(f"cannot create a file in {dest.parent}: {exc}") from exc
        tmp = pathlib.Path(tmp_name)
        hasher = hashlib.sha256()
        written = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                try:
                    for chunk in response.iter_bytes():
                        written += len(chunk)
                        if written > self._max_bytes:
                            raise DownloadRefused(
                                f"{where}: body over the {self._max_bytes}-byte cap"
                            )
                        hasher.update(chunk)
                        fh.write(chunk)
                        self._remaining(deadline)
                        if on_chunk is not None:
                            on_chunk()
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    raise DownloadTransient(
                        f"{where}: {type(exc).__name__} while reading the body"
                    ) from exc
                received = _wire_length(response, written)
                if expected is not None and received != expected:
                    raise DownloadTransient(
                        f"{where}: body of {received} bytes, Content-Length said {expected}"
                    )
                fh.flush()
                os.fsync(fh.fileno())
            faultpoints.reach("download.before_rename")
            os.replace(tmp, dest)
            _fsync_directory(dest.parent)
        except OSError as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise DownloadTransient(f"cannot write {dest.name}: {exc}") from exc
        except BaseException:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return written, hasher.hexdigest()
