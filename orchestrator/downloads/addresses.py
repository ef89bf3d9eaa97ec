"""Which IP addresses the fetcher may connect to.

Download URLs come from the upstream and, in an attacker's hands, from forged callbacks, so
every address a URL resolves to is checked here before a connection is made. Anything that is
not a plain, globally routable unicast address is refused: loopback, private, link-local (and
so the cloud metadata service on 169.254.169.254), multicast, reserved, unspecified, shared
CGNAT space, benchmarking and documentation ranges, broadcast, site-local, and the IPv6 forms
that carry an IPv4 address inside them.

The one exception is an explicit allowlist of networks (``allowed_networks``), used by the
demo and the tests to reach a sandbox on ``127.0.0.0/8``. It wins over every refusal.

Embedded IPv4 addresses:

* IPv4-mapped ``::ffff:a.b.c.d`` reaches the IPv4 host ``a.b.c.d`` on this machine's own
  stack, so it is refused unless ``a.b.c.d`` (or the IPv6 form) is in the allowlist.
* IPv4-compatible ``::a.b.c.d`` (deprecated) and Teredo ``2001::/32`` are always refused.
* NAT64 ``64:ff9b::/96`` and 6to4 ``2002::/16`` are refused when the IPv4 address they carry
  would be refused. The allowlist is *not* applied to that IPv4 address: the translator on
  the path, not this machine, would connect to it.

The checks use explicit tables rather than only :mod:`ipaddress` properties, whose answers
differ between Python patch releases; the properties are consulted afterwards as a backstop
that can only refuse more.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from orchestrator.exceptions import DownloadRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Refused IPv4 networks with the name given in refusals; first match wins (most specific first).
_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(cidr), name)
    for cidr, name in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "this-network (reserved)"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (incl. cloud metadata)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (reserved)"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "6to4 relay anycast (reserved)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking (RFC 2544)"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved (240/4)"),
    )
)

#: Refused IPv6 networks, after the embedded-IPv4 forms have been handled.
_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(cidr), name)
    for cidr, name in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "NAT64 local-use (RFC 8215)"),
        ("100::/64", "discard-only (RFC 6666)"),
        ("2001:2::/48", "benchmarking (RFC 5180)"),
        ("2001:db8::/32", "documentation"),
        ("2001:10::/28", "ORCHID (deprecated)"),
        ("2001:20::/28", "ORCHIDv2"),
        ("2001::/23", "IETF protocol assignments (reserved)"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("5f00::/16", "SRv6 SIDs (RFC 9602)"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
        ("::/8", "reserved"),
    )
)

_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def _refusal_v4(ip: ipaddress.IPv4Address) -> str | None:
    """The class name under which ``ip`` is refused, or None if it is public unicast."""
    for network, name in _V4_REFUSED:
        if ip in network:
            return name
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not globally routable"
    return None


def _refusal_v6(ip: ipaddress.IPv6Address) -> str | None:
    """The class name under which ``ip`` is refused, or None if it is public unicast."""
    if ip in _V4_MAPPED:
        return "IPv4-mapped IPv6"
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible IPv6 (deprecated)"
    if ip in _TEREDO:
        return "Teredo (embeds IPv4)"
    if ip in _NAT64:
        inner = _refusal_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return None if inner is None else f"NAT64 embedding {inner}"
    if ip in _SIX_TO_FOUR:
        embedded = ip.sixtofour
        assert embedded is not None
        inner = _refusal_v4(embedded)
        return None if inner is None else f"6to4 embedding {inner}"
    for network, name in _V6_REFUSED:
        if ip in network:
            return name
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_link_local
        or ip.is_site_local
    ):
        return "not globally routable"
    return None


class AddressPolicy:
    """Decides whether the fetcher may connect to an IP address.

    ``allowed_networks`` are CIDR strings (``"127.0.0.0/8"``, ``"::1/128"``, or a bare
    address); an address inside one of them is accepted whatever its class.
    """

    def __init__(self, allowed_networks: Sequence[str] = ()) -> None:
        if isinstance(allowed_networks, str):
            raise ValueError("allowed_networks must be a sequence of CIDR strings, not a string")
        networks: list[IPNetwork] = []
        for cidr in allowed_networks:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=True))
            except ValueError as exc:
                raise ValueError(
                    f"invalid network {cidr!r} in allowed_networks: {exc} "
                    "(expected CIDR such as '127.0.0.0/8' or '::1/128', host bits zero)"
                ) from exc
        self._allowed: tuple[IPNetwork, ...] = tuple(networks)

    @property
    def allowed_networks(self) -> tuple[str, ...]:
        return tuple(str(network) for network in self._allowed)

    def __repr__(self) -> str:
        return f"AddressPolicy({list(self.allowed_networks)!r})"

    def _is_allowed(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self._allowed)

    def check(self, ip: str) -> None:
        """Return if ``ip`` may be contacted, else raise :class:`DownloadRefused`.

        The message names the address class (``"link-local (incl. cloud metadata)"``), never
        the URL it came from.
        """
        try:
            address = ipaddress.ip_address(ip)
        except ValueError as exc:
            raise DownloadRefused("refused: not an IP address") from exc
        if self._is_allowed(address):
            return
        if isinstance(address, ipaddress.IPv6Address):
            mapped = address.ipv4_mapped
            if mapped is not None and self._is_allowed(mapped):
                return
            refusal = _refusal_v6(address)
        else:
            refusal = _refusal_v4(address)
        if refusal is not None:
            raise DownloadRefused(f"refused address class: {refusal}")
