"""``SMTPD_RATE_LIMIT``'s token buckets, on a clock the test moves."""

from __future__ import annotations

import pytest

from mailroom.integrations.smtpd.rate_limit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_minutes_worth_at_once_then_the_limits_pace_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert all(limiter.take("a") for _ in range(60))
    assert not limiter.take("a")
    assert limiter.take("b")  # another key has its own bucket
    clock.now += 1.0  # one message a second comes back
    assert limiter.take("a")
    assert not limiter.take("a")
    clock.now += 3600.0  # a full bucket holds a minute's worth, no more
    assert sum(limiter.take("a") for _ in range(100)) == 60


def test_a_refusal_does_not_use_up_the_next_message() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.take("k")
    for _ in range(5):
        assert not limiter.take("k")
    clock.now += 60.0
    assert limiter.take("k")


def test_idle_buckets_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    for key in range(100):
        limiter.take(key)
    clock.now += 7200.0
    limiter.take("now")
    assert list(limiter._buckets) == ["now"]


def test_a_limit_below_one_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0)
