"""``SMTPD_RATE_LIMIT``: messages a minute per submitter, as a token bucket.

A bucket holds a minute's worth of messages and refills evenly, so a client may send a burst
of up to the limit and then the limit's pace. Kept in the process (one ``mailroom smtpd``
enforces its own limit): a refusal is transient (``451 4.7.1``), so the client's queue
retries later and nothing is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

__all__ = ["RateLimiter"]

_FORGET_AFTER = 3600.0  # seconds idle after which a full bucket is dropped (keeps memory flat)


class RateLimiter:
    """Token buckets of ``per_minute`` messages, one per key (an API key's id, an address)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key: (tokens, at)
        self._swept = clock()

    def take(self, key: Hashable) -> bool:
        """Whether ``key`` may send one more message now (and count it if so)."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60.0)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if now - self._swept > _FORGET_AFTER:
            self._sweep(now)
        return allowed

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key, (_, at) in list(self._buckets.items()):
            if now - at > _FORGET_AFTER:  # refilled long ago: the same as no bucket
                del self._buckets[key]
