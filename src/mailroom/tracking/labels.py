"""Who most likely made a tracking hit: a person, a mail provider's proxy, or a scanner.

Every hit is kept; :func:`label_hit` only says how to count it (see
:class:`~mailroom.outbox.vocabulary.HitLabel`). Filtering hard loses real people (Mautic dropped
real Gmail opens, its #16069: Gmail's proxy *is* how a Gmail user's open arrives, so it is
labelled, never discarded); not filtering at all reports 50 % opens minutes after a send
(listmonk #1025). The rules, first match wins:

1. ``HEAD`` → ``scanner``: a mail reader fetches the image or follows the link with GET;
   link checkers ask with HEAD first.
2. A known scanner's user agent, or none at all → ``scanner``
   (:data:`SCANNER_AGENTS`: Microsoft's link preview, the mail-security gateways, HTTP
   libraries and headless browsers).
3. Opens only — a mail provider's image proxy → ``prefetch``: Gmail's (``GoogleImageProxy``),
   Yahoo's (``YahooMailProxy``), and Apple Mail Privacy Protection, which fetches every image
   when the message arrives with the bare user agent ``Mozilla/5.0`` from Apple's network
   (17.0.0.0/8), the two signs django-anymail's users, Mautic and listmonk's reports go by.
   A prefetch says the message arrived, not that it was read.
4. Clicks only — within :data:`SCANNER_CLICK_SECONDS` of delivery → ``scanner``: nobody
   reads a message and clicks in that time; security gateways follow every link on arrival.
5. Otherwise ``human``.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from functools import lru_cache

from mailroom.config import TrackingIP
from mailroom.outbox.vocabulary import HitLabel

__all__ = [
    "APPLE_PROXY_NETWORKS",
    "PREFETCH_AGENTS",
    "SCANNER_AGENTS",
    "SCANNER_CLICK_SECONDS",
    "HitKind",
    "keep_ip",
    "label_hit",
]

SCANNER_CLICK_SECONDS = 10.0
"""A click this soon after delivery (seconds) is a link scanner's, not a reader's."""

SCANNER_AGENTS = re.compile(
    r"BingPreview|Barracuda|Mimecast|Proofpoint|urldefense|IronPort|Cisco|Symantec|"
    r"MessageLabs|TrendMicro|Trend Micro|Forcepoint|Sophos|FortiGuard|SafeLinks|"
    r"Microsoft Office Existence Discovery|MSOffice Existence|Avanan|Abnormal|Tessian|"
    r"HeadlessChrome|PhantomJS|python-requests|python-urllib|aiohttp|httpx|curl/|Wget|"
    r"Go-http-client|Java/|okhttp|libwww-perl|node-fetch|axios|bot\b|crawler|spider",
    re.IGNORECASE,
)
"""User agents of link-safety scanners, previewers and HTTP libraries (no person's mail
reader sends these)."""

PREFETCH_AGENTS = re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy", re.IGNORECASE)
"""The image proxies of Gmail and Yahoo Mail."""

APPLE_PROXY_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
"""Apple's own network, where Mail Privacy Protection's prefetches come from."""

_APPLE_PROXY_AGENT = "Mozilla/5.0"  # MPP's whole user agent: no platform, no engine


class HitKind(StrEnum):
    """What was hit."""

    OPEN = "open"
    CLICK = "click"


def label_hit(
    kind: HitKind,
    *,
    method: str,
    user_agent: str,
    ip: str | None,
    seconds_since_delivery: float | None,
) -> HitLabel:
    """The label of one hit (the module's docstring lists the rules).

    ``ip`` is the client's whole address (before :func:`keep_ip`); ``seconds_since_delivery``
    is ``None`` when the message's delivery time is not known.
    """
    agent = user_agent.strip()
    scanner, prefetch = _agent_signs(agent)
    if method.upper() == "HEAD" or scanner:
        return HitLabel.SCANNER
    if kind is HitKind.OPEN:
        if prefetch or _from_apple_proxy(agent, ip):
            return HitLabel.PREFETCH
    elif seconds_since_delivery is not None and seconds_since_delivery < SCANNER_CLICK_SECONDS:
        return HitLabel.SCANNER
    return HitLabel.HUMAN


@lru_cache(maxsize=4096)
def _agent_signs(agent: str) -> tuple[bool, bool]:
    """(a scanner's, an image proxy's): what the user agent alone says. Remembered: the
    patterns are long, a hit's agent is cut short, and most hits share a few agents."""
    scanner = not agent or SCANNER_AGENTS.search(agent) is not None
    return scanner, PREFETCH_AGENTS.search(agent) is not None


def _from_apple_proxy(agent: str, ip: str | None) -> bool:
    if agent == _APPLE_PROXY_AGENT:
        return True
    address = _parse(ip)
    return address is not None and any(address in net for net in APPLE_PROXY_NETWORKS)


@lru_cache(maxsize=4096)  # the same addresses hit again and again (a proxy's, a reader's)
def _parse(ip: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=4096)
def keep_ip(ip: str | None, policy: TrackingIP) -> str | None:
    """What ``TRACKING_IP`` lets us keep of a hit's address: the /24 of IPv4 and the /48 of
    IPv6 (``truncate``), all of it (``full``), or nothing (``none``). Not an address (a test
    client, a Unix socket): nothing."""
    address = _parse(ip)
    if address is None or policy is TrackingIP.NONE:
        return None
    if policy is TrackingIP.FULL:
        return str(address)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
