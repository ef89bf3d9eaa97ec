"""Addresses and networks, shared by the config, the callback endpoint and the job API.

Pure helpers over :mod:`ipaddress`: parse a CIDR list naming the bad entry, read one address
(an IPv4-mapped IPv6 address counts as its IPv4 form), and say whether a host or a peer is
on loopback. The downloader's SSRF policy (:mod:`orchestrator.downloads.addresses`) is a
separate, stricter table.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(values: Sequence[str], what: str) -> tuple[Network, ...]:
    """CIDRs (a bare address is a /32 or /128); :class:`ValueError` naming the bad one."""
    nets: list[Network] = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{what}: {value!r} is not a network: {exc}") from None
    return tuple(nets)


def parse_address(value: str | None) -> Address | None:
    """One IP address (``[::1]`` brackets allowed; IPv4-mapped IPv6 as IPv4), or None."""
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(host: str | None) -> bool:
    """Is ``host`` (an address, or the name ``localhost``) on this machine's loopback?"""
    if host == "localhost":
        return True
    ip = parse_address(host)
    return ip is not None and ip.is_loopback
