"""The submission port's connection counts: who is let in, who is refused and over which
limit, counting out once, and a warning once a burst."""

from __future__ import annotations

import logging

import pytest

from mailroom.integrations.smtpd.connections import BURST_GAP, ConnectionLimits, Limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(total: int = 4, per_client: int = 2, **options: object) -> ConnectionLimits[object]:
    return ConnectionLimits(total, per_client, **options)  # type: ignore[arg-type]


def test_each_client_up_to_its_limit_and_all_up_to_the_total() -> None:
    counted = limits()
    a1, a2, a3, b1, b2, c1 = (object() for _ in range(6))
    assert counted.admit(a1, "192.0.2.1") is None
    assert counted.admit(a2, "::ffff:192.0.2.1") is None  # the same client
    assert counted.admit(a3, "192.0.2.1") is Limit.PER_CLIENT
    assert counted.admit(b1, "192.0.2.2") is None
    assert counted.admit(b2, "192.0.2.2") is None
    assert counted.admit(c1, "192.0.2.3") is Limit.TOTAL
    assert len(counted) == 4
    assert counted.from_client("192.0.2.1") == 2
    assert set(counted) == {a1, a2, b1, b2}
    assert counted.refused == 2


def test_a_connection_is_counted_out_once_and_one_refused_never_was() -> None:
    counted = limits(total=2, per_client=1)
    first, refused, second = object(), object(), object()
    assert counted.admit(first, "192.0.2.1") is None
    assert counted.admit(first, "192.0.2.1") is None  # again (STARTTLS): still one
    assert counted.admit(refused, "192.0.2.1") is Limit.PER_CLIENT
    counted.release(refused)
    assert counted.from_client("192.0.2.1") == 1
    counted.release(first)
    counted.release(first)
    assert len(counted) == 0
    assert counted.from_client("192.0.2.1") == 0
    assert counted.admit(second, "192.0.2.1") is None


def test_exempt_clients_have_no_limit_of_their_own_but_count_in_the_total() -> None:
    counted = limits(total=3, per_client=1, exempt=lambda host: host == "10.0.0.5")
    assert [counted.admit(object(), "10.0.0.5") for _ in range(3)] == [None, None, None]
    assert counted.admit(object(), "10.0.0.5") is Limit.TOTAL
    assert counted.from_client("10.0.0.5") == 3


def test_a_warning_once_a_burst_for_each_limit(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    counted = limits(total=2, per_client=1, clock=clock)
    counted.admit(object(), "192.0.2.1")
    caplog.set_level(logging.WARNING, "mailroom.integrations.smtpd.connections")
    for _ in range(50):
        clock.now += 1
        counted.admit(object(), "192.0.2.1")
    (per_client,) = caplog.records
    assert "1 connections are open from 192.0.2.1" in per_client.getMessage()
    assert "SMTPD_MAX_CONNECTIONS_PER_CLIENT" in per_client.getMessage()
    counted.admit(object(), "192.0.2.2")
    counted.admit(object(), "192.0.2.3")
    counted.admit(object(), "192.0.2.4")
    assert [r.limit for r in caplog.records] == [Limit.PER_CLIENT, Limit.TOTAL]  # type: ignore[attr-defined]
    clock.now += BURST_GAP - 1  # within the gap: the same burst
    counted.admit(object(), "192.0.2.1")
    assert len(caplog.records) == 2
    clock.now += BURST_GAP + 1  # quiet for longer: a new burst
    counted.admit(object(), "192.0.2.1")
    assert len(caplog.records) == 3
    assert counted.refused == 54
