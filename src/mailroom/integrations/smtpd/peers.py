"""Who is connecting: whether a peer's address is in ``SMTPD_TRUSTED_NETWORKS`` (may submit
without AUTH) or on loopback (may AUTH without TLS when no certificate is set), and the one
spelling of its address that connection counts and the ``Received`` field use."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["TrustedNetworks", "address_literal", "client_address", "is_loopback", "peer_host"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def peer_host(peer: Any) -> str:
    """The address part of asyncio's ``peername`` (a tuple for IP sockets), or ``""``."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return ""


@functools.lru_cache(maxsize=4096)
def _address(host: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # no IPv6 zone
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1 on a dual-stack socket is 10.0.0.1
    return address


def client_address(host: str) -> str:
    """``host`` as one client is counted: ``::ffff:10.0.0.1`` and ``10.0.0.1`` alike, no
    IPv6 zone; ``host`` itself if it is not an IP address."""
    address = _address(host)
    return host if address is None else str(address)


def address_literal(host: str) -> str | None:
    """RFC 5321 §4.1.3's address literal for ``host`` (``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``), or ``None`` if it is not an IP address."""
    address = _address(host)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return f"[IPv6:{address}]"
    return f"[{address}]"


def is_loopback(host: str) -> bool:
    address = _address(host)
    return address is not None and address.is_loopback


class TrustedNetworks:
    """The networks that may submit without AUTH (none by default)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks
        )
        self.contains: Callable[[str], bool] = functools.lru_cache(maxsize=4096)(self._contains)

    def _contains(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in self.networks)
