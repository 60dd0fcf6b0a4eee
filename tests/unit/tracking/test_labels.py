"""Hit labels from real user agents, methods, addresses and delays."""

from __future__ import annotations

import pytest

from mailroom.config import TrackingIP
from mailroom.outbox.vocabulary import HitLabel
from mailroom.tracking.labels import SCANNER_CLICK_SECONDS, HitKind, keep_ip, label_hit

GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
APPLE_MPP = "Mozilla/5.0"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
BING_PREVIEW = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/100.0.4896.127 Safari/537.36 Edg/100.0.1185.50 BingPreview/1.0b"
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/119.0.6045.105 Safari/537.36"
)
CURL = "curl/8.5.0"
PYTHON_REQUESTS = "python-requests/2.31.0"


def open_label(agent: str, *, method: str = "GET", ip: str | None = "203.0.113.7") -> HitLabel:
    return label_hit(
        HitKind.OPEN, method=method, user_agent=agent, ip=ip, seconds_since_delivery=3600.0
    )


def click_label(agent: str, seconds: float | None, *, method: str = "GET") -> HitLabel:
    return label_hit(
        HitKind.CLICK,
        method=method,
        user_agent=agent,
        ip="203.0.113.7",
        seconds_since_delivery=seconds,
    )


@pytest.mark.parametrize("agent", [GMAIL_PROXY, APPLE_MPP, YAHOO_PROXY])
def test_mail_provider_proxies_are_prefetches(agent: str) -> None:
    assert open_label(agent) is HitLabel.PREFETCH


def test_an_open_from_apples_network_is_a_prefetch() -> None:
    assert open_label(IPHONE_MAIL, ip="17.58.101.4") is HitLabel.PREFETCH
    assert open_label(IPHONE_MAIL, ip="::ffff:17.58.101.4") is HitLabel.PREFETCH


@pytest.mark.parametrize("agent", [IPHONE_MAIL, THUNDERBIRD, FIREFOX])
def test_mail_readers_are_people(agent: str) -> None:
    assert open_label(agent) is HitLabel.HUMAN
    assert click_label(agent, 600.0) is HitLabel.HUMAN


@pytest.mark.parametrize("agent", [BING_PREVIEW, HEADLESS, CURL, PYTHON_REQUESTS, "", "   "])
def test_scanners_and_libraries_are_scanners(agent: str) -> None:
    assert open_label(agent) is HitLabel.SCANNER
    assert click_label(agent, 600.0) is HitLabel.SCANNER


def test_head_is_a_scanner_whoever_asks() -> None:
    assert open_label(FIREFOX, method="HEAD") is HitLabel.SCANNER
    assert click_label(FIREFOX, 600.0, method="head") is HitLabel.SCANNER


def test_a_click_within_seconds_of_delivery_is_a_scanner() -> None:
    assert click_label(FIREFOX, 0.4) is HitLabel.SCANNER
    assert click_label(FIREFOX, SCANNER_CLICK_SECONDS - 0.01) is HitLabel.SCANNER
    assert click_label(FIREFOX, SCANNER_CLICK_SECONDS) is HitLabel.HUMAN
    assert click_label(FIREFOX, None) is HitLabel.HUMAN  # delivery time unknown
    # An open soon after delivery is not a scanner's for that alone (Gmail fetches at once).
    assert (
        label_hit(HitKind.OPEN, method="GET", user_agent=FIREFOX, ip=None, seconds_since_delivery=1)
        is HitLabel.HUMAN
    )


def test_a_gmail_proxy_click_is_not_a_prefetch() -> None:
    assert click_label(GMAIL_PROXY, 600.0) is HitLabel.HUMAN


@pytest.mark.parametrize(
    ("ip", "policy", "kept"),
    [
        ("203.0.113.77", TrackingIP.TRUNCATE, "203.0.113.0"),
        ("2001:db8:abcd:12:1:2:3:4", TrackingIP.TRUNCATE, "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", TrackingIP.TRUNCATE, "198.51.100.0"),
        ("203.0.113.77", TrackingIP.FULL, "203.0.113.77"),
        ("2001:db8::1", TrackingIP.FULL, "2001:db8::1"),
        ("203.0.113.77", TrackingIP.NONE, None),
        ("testclient", TrackingIP.FULL, None),
        (None, TrackingIP.TRUNCATE, None),
    ],
)
def test_what_is_kept_of_an_address(ip: str | None, policy: TrackingIP, kept: str | None) -> None:
    assert keep_ip(ip, policy) == kept
