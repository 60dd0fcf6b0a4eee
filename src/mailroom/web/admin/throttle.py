"""The login throttle: within 15 minutes, at most 5 failed sign-ins for one user name from
one address, 20 from one address whatever the name, and 50 for one name from all addresses
together; past a limit, attempts are refused (429) until the oldest failure leaves the
window. It counts in this process's memory: a restart forgets, which is fine for slowing
guessing down to a few tries an hour, and it needs no table.

Counting per name *and address* first means one attacker's wrong guesses lock that attacker
out, not the real admin signing in from elsewhere; the higher per-name ceiling still stops a
guessing spree spread over many addresses.

An attempt is counted when it starts (:meth:`LoginThrottle.attempt`: check and count under
one lock), not when its password check fails: otherwise parallel attempts would all pass the
check before any failure was counted. A success gives its reservation back
(:meth:`LoginThrottle.succeeded`).

Names are counted case-folded (``Admin`` and ``admin`` are one target). Memory is bounded:
at most :data:`MAX_KEYS` keys are tracked; past that the stalest are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

__all__ = [
    "IP_LIMIT",
    "MAX_KEYS",
    "USER_FROM_IP_LIMIT",
    "USER_LIMIT",
    "WINDOW",
    "LoginThrottle",
]

WINDOW = 15 * 60.0
"""Seconds a failure counts against a name or an address."""
USER_FROM_IP_LIMIT = 5
"""Failures for one name from one address."""
IP_LIMIT = 20
"""Failures from one address, whatever the names."""
USER_LIMIT = 50
"""Failures for one name, whatever the addresses."""
MAX_KEYS = 10_000


class LoginThrottle:
    """Sign-in attempts per (address, name), per address and per name, in a sliding window."""

    def __init__(self, *, window: float = WINDOW) -> None:
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, username: str, address: str, now: float) -> float:
        """Seconds until an attempt for ``username`` from ``address`` may be tried, or 0: then
        the attempt is counted as failed already (the caller checks the password after), until
        :meth:`succeeded` gives it back."""
        limits = _limits(username, address)
        with self._lock:
            wait = max(self._wait(key, limit, now) for key, limit in limits)
            if wait > 0:
                return wait
            for key, _ in limits:
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                self._failures[key] = times  # now the freshest
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)
            return 0.0

    def succeeded(self, username: str, address: str, started: float) -> None:
        """The attempt made at ``started`` was right: forget the name's failures (its owner
        knows the password) and give back the address's count for this attempt; the address
        keeps its other failures, so one good account does not reset a spree on others."""
        (pair, _), (ip, _), (user, _) = _limits(username, address)
        with self._lock:
            self._failures.pop(pair, None)
            self._failures.pop(user, None)
            times = self._failures.get(ip)
            if times is not None and started in times:
                times.remove(started)

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < limit:
            return 0.0
        # Free again when the failure that took the count to the limit leaves the window.
        return times[-limit] + self._window - now


def _limits(username: str, address: str) -> tuple[tuple[str, int], ...]:
    """The keys an attempt counts against, with their limits: (address, name), address, name."""
    name = username.strip().casefold()
    return (
        (f"pair:{address}\0{name}", USER_FROM_IP_LIMIT),
        (f"ip:{address}", IP_LIMIT),
        (f"user:{name}", USER_LIMIT),
    )
