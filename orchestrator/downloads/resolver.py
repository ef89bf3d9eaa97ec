"""Host name resolution for the fetcher, behind a Protocol so tests can answer without DNS."""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol

from orchestrator.exceptions import DownloadTransient


class Resolver(Protocol):
    """Turns a host name into the IP addresses (strings) a connection could go to."""

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, deduplicated, in preference order.

        IP literals (``"127.0.0.1"``, ``"::1"``, ``"[::1]"``) resolve to themselves. Raises
        :class:`DownloadTransient` when the name cannot be resolved.
        """
        ...


def ip_literal(host: str) -> str | None:
    """The normalised address if ``host`` is an IP literal (brackets allowed), else None."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


class SystemResolver:
    """Resolves with :func:`socket.getaddrinfo`, IPv4 and IPv6."""

    def resolve(self, host: str, port: int) -> list[str]:
        literal = ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            infos = socket.getaddrinfo(
                host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as exc:
            raise DownloadTransient(f"could not resolve host {host!r}") from exc
        addresses = dict.fromkeys(
            str(sockaddr[0])
            for family, _type, _proto, _canonname, sockaddr in infos
            if family in (socket.AF_INET, socket.AF_INET6)
        )
        if not addresses:
            raise DownloadTransient(f"host {host!r} resolved to no usable address")
        return list(addresses)
