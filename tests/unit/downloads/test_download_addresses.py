"""AddressPolicy: one case per refused address class, the allowlist, and public addresses.

Addresses here are only checked, never contacted.
"""

from __future__ import annotations

import pytest

from orchestrator.downloads import AddressPolicy
from orchestrator.exceptions import DownloadRefused

REFUSED_V4 = [
    pytest.param("127.0.0.1", "loopback", id="v4-loopback"),
    pytest.param("127.255.255.254", "loopback", id="v4-loopback-high"),
    pytest.param("10.0.0.1", "private", id="v4-private-10"),
    pytest.param("172.16.0.1", "private", id="v4-private-172.16"),
    pytest.param("172.31.255.255", "private", id="v4-private-172.31"),
    pytest.param("192.168.1.1", "private", id="v4-private-192.168"),
    pytest.param("169.254.169.254", "link-local", id="v4-cloud-metadata"),
    pytest.param("169.254.0.1", "link-local", id="v4-link-local"),
    pytest.param("224.0.0.1", "multicast", id="v4-multicast"),
    pytest.param("239.255.255.250", "multicast", id="v4-multicast-ssdp"),
    pytest.param("240.0.0.1", "reserved", id="v4-reserved"),
    pytest.param("0.0.0.0", "unspecified", id="v4-unspecified"),
    pytest.param("0.1.2.3", "this-network", id="v4-this-network"),
    pytest.param("100.64.0.1", "CGNAT", id="v4-shared-cgnat"),
    pytest.param("100.127.255.254", "CGNAT", id="v4-shared-cgnat-high"),
    pytest.param("198.18.0.1", "benchmarking", id="v4-benchmarking"),
    pytest.param("198.19.255.254", "benchmarking", id="v4-benchmarking-high"),
    pytest.param("192.0.2.1", "documentation", id="v4-doc-test-net-1"),
    pytest.param("198.51.100.1", "documentation", id="v4-doc-test-net-2"),
    pytest.param("203.0.113.1", "documentation", id="v4-doc-test-net-3"),
    pytest.param("255.255.255.255", "broadcast", id="v4-broadcast"),
    pytest.param("192.0.0.8", "IETF", id="v4-ietf-protocol"),
    pytest.param("192.88.99.1", "6to4 relay", id="v4-6to4-relay"),
]

REFUSED_V6 = [
    pytest.param("::1", "loopback", id="v6-loopback"),
    pytest.param("::", "unspecified", id="v6-unspecified"),
    pytest.param("fc00::1", "unique local", id="v6-ula-fc"),
    pytest.param("fd12:3456::1", "unique local", id="v6-ula-fd"),
    pytest.param("fe80::1", "link-local", id="v6-link-local"),
    pytest.param("fe80::1%eth0", "link-local", id="v6-link-local-scoped"),
    pytest.param("fec0::1", "site-local", id="v6-site-local"),
    pytest.param("ff02::1", "multicast", id="v6-multicast"),
    pytest.param("2001:db8::1", "documentation", id="v6-documentation"),
    pytest.param("3fff::1", "documentation", id="v6-documentation-3fff"),
    pytest.param("2001:2::1", "benchmarking", id="v6-benchmarking"),
    pytest.param("100::1", "discard", id="v6-discard"),
    pytest.param("64:ff9b:1::1", "NAT64 local-use", id="v6-nat64-local-use"),
    pytest.param("2001:10::1", "ORCHID", id="v6-orchid"),
    pytest.param("4000::1", "not globally routable", id="v6-unassigned"),
]

REFUSED_EMBEDDED = [
    pytest.param("::ffff:127.0.0.1", "IPv4-mapped", id="mapped-loopback"),
    pytest.param("::ffff:10.0.0.1", "IPv4-mapped", id="mapped-private"),
    pytest.param("::ffff:169.254.169.254", "IPv4-mapped", id="mapped-metadata"),
    pytest.param("::ffff:a9fe:a9fe", "IPv4-mapped", id="mapped-metadata-hex"),
    pytest.param("::ffff:93.184.216.34", "IPv4-mapped", id="mapped-public"),
    pytest.param("::127.0.0.1", "IPv4-compatible", id="compatible-loopback"),
    pytest.param("::10.0.0.1", "IPv4-compatible", id="compatible-private"),
    pytest.param("::93.184.216.34", "IPv4-compatible", id="compatible-public"),
    pytest.param("64:ff9b::127.0.0.1", "NAT64 embedding loopback", id="nat64-loopback"),
    pytest.param("64:ff9b::a9fe:a9fe", "NAT64 embedding link-local", id="nat64-metadata"),
    pytest.param("64:ff9b::10.0.0.1", "NAT64 embedding private", id="nat64-private"),
    pytest.param("2002:7f00:1::1", "6to4 embedding loopback", id="6to4-loopback"),
    pytest.param("2002:a9fe:a9fe::1", "6to4 embedding link-local", id="6to4-metadata"),
    pytest.param("2002:c0a8:101::1", "6to4 embedding private", id="6to4-private"),
    pytest.param("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo", id="teredo"),
    pytest.param("2001::1", "Teredo", id="teredo-minimal"),
]

PUBLIC = [
    "93.184.216.34",
    "1.1.1.1",
    "8.8.8.8",
    "2606:4700::1111",
    "2a00:1450:4001:81c::200e",
    "64:ff9b::93.184.216.34",  # NAT64 of a public address (DNS64 networks)
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize(("ip", "label"), REFUSED_V4 + REFUSED_V6 + REFUSED_EMBEDDED)
def test_refused_address_classes(ip: str, label: str) -> None:
    with pytest.raises(DownloadRefused, match=label):
        AddressPolicy([]).check(ip)


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_accepted(ip: str) -> None:
    AddressPolicy([]).check(ip)


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "127.8.9.10", "::ffff:127.0.0.1", "::ffff:7f00:1", "::1"]
)
def test_allowlist_admits_its_networks(ip: str) -> None:
    AddressPolicy(["127.0.0.0/8", "::1/128"]).check(ip)


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "169.254.169.254",
        "::ffff:10.0.0.1",
        "::1",  # IPv6 loopback is not in an IPv4-only allowlist
        "64:ff9b::127.0.0.1",  # the translator's loopback, not ours
        "2002:7f00:1::1",
        "::127.0.0.1",
    ],
)
def test_allowlist_admits_nothing_else(ip: str) -> None:
    with pytest.raises(DownloadRefused):
        AddressPolicy(["127.0.0.0/8"]).check(ip)


def test_allowlist_of_an_ipv6_network() -> None:
    policy = AddressPolicy(["fd00::/8"])
    policy.check("fd00::5")
    with pytest.raises(DownloadRefused):
        policy.check("fc00::5")


def test_allowlist_single_address() -> None:
    policy = AddressPolicy(["10.1.2.3"])
    policy.check("10.1.2.3")
    with pytest.raises(DownloadRefused):
        policy.check("10.1.2.4")
    assert policy.allowed_networks == ("10.1.2.3/32",)


@pytest.mark.parametrize("cidr", ["not-a-network", "10.0.0.0/33", "127.0.0.1/8", "", "::1/129"])
def test_invalid_cidr_is_a_value_error(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid network"):
        AddressPolicy([cidr])


def test_a_bare_string_is_not_a_sequence_of_networks() -> None:
    with pytest.raises(ValueError, match="sequence"):
        AddressPolicy("127.0.0.0/8")


@pytest.mark.parametrize("value", ["localhost", "", "1.2.3", "[::1]"])
def test_non_addresses_refused(value: str) -> None:
    with pytest.raises(DownloadRefused, match="not an IP address"):
        AddressPolicy([]).check(value)


def test_refusal_message_names_the_class_only() -> None:
    with pytest.raises(DownloadRefused) as info:
        AddressPolicy([]).check("169.254.169.254")
    assert "link-local" in str(info.value)
