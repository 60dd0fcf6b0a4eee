"""Trusted networks and loopback, for the addresses asyncio reports."""

from __future__ import annotations

from mailroom.integrations.smtpd.peers import TrustedNetworks, is_loopback, peer_host


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
