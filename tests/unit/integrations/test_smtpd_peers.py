"""Trusted networks and loopback, for the addresses asyncio reports."""

from __future__ import annotations

from mailroom.integrations.smtpd.peers import (
    TrustedNetworks,
    address_literal,
    client_address,
    is_loopback,
    peer_host,
)


def test_trusted_networks_match_ipv4_ipv6_and_mapped_addresses() -> None:
    trusted = TrustedNetworks(["10.0.0.0/8", "2001:db8::/32", "192.168.1.5"])
    assert trusted.contains("10.1.2.3")
    assert trusted.contains("::ffff:10.1.2.3")  # a dual-stack socket's IPv4 peer
    assert trusted.contains("2001:db8::1")
    assert trusted.contains("192.168.1.5")
    assert not trusted.contains("192.168.1.6")
    assert not trusted.contains("127.0.0.1")
    assert not trusted.contains("")
    assert not trusted.contains("not an address")


def test_no_network_trusts_nobody() -> None:
    assert not TrustedNetworks([]).contains("127.0.0.1")


def test_loopback_and_the_peer_tuple() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.8.9.10")
    assert is_loopback("::1")
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.0.0.1")
    assert not is_loopback("")
    assert peer_host(("10.0.0.1", 25)) == "10.0.0.1"
    assert peer_host(("::1", 25, 0, 0)) == "::1"
    assert peer_host(None) == ""


def test_a_client_is_counted_by_one_spelling_of_its_address() -> None:
    assert client_address("::ffff:10.1.2.3") == "10.1.2.3"
    assert client_address("fe80::1%eth0") == "fe80::1"
    assert client_address("2001:DB8::1") == "2001:db8::1"
    assert client_address("") == ""


def test_address_literals_are_rfc_5321s() -> None:
    assert address_literal("192.0.2.7") == "[192.0.2.7]"
    assert address_literal("::ffff:192.0.2.7") == "[192.0.2.7]"
    assert address_literal("2001:db8::1") == "[IPv6:2001:db8::1]"
    assert address_literal("not an address") is None
