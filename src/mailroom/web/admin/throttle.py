"""The login throttle: after 5 failed sign-ins for one user name, or 20 from one address,
within 15 minutes, further attempts are refused (429) until the oldest failure leaves the
window. It counts in this process's memory: a restart forgets, which is fine for slowing
guessing down to a few tries an hour, and it needs no table.

Names are counted case-folded (``Admin`` and ``admin`` are one target). Memory is bounded:
at most :data:`MAX_KEYS` names and addresses are tracked; past that the stalest are dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

__all__ = ["IP_LIMIT", "MAX_KEYS", "USER_LIMIT", "WINDOW", "LoginThrottle"]

WINDOW = 15 * 60.0
"""Seconds a failure counts against a name or an address."""
USER_LIMIT = 5
IP_LIMIT = 20
MAX_KEYS = 10_000


class LoginThrottle:
    """Failed sign-ins per user name and per client address, in a sliding window."""

    def __init__(self, *, window: float = WINDOW) -> None:
        self._window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, username: str, address: str, now: float) -> float:
        """Seconds until an attempt for ``username`` from ``address`` may be tried; 0 if now."""
        with self._lock:
            return max(
                self._wait(_user_key(username), USER_LIMIT, now),
                self._wait(_ip_key(address), IP_LIMIT, now),
            )

    def failed(self, username: str, address: str, now: float) -> None:
        """Count a failed sign-in."""
        with self._lock:
            for key in (_user_key(username), _ip_key(address)):
                times = self._failures.pop(key, None) or deque()
                times.append(now)
                self._failures[key] = times  # now the freshest
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, username: str) -> None:
        """Forget the failures for ``username`` (its owner knows the password); the address
        keeps its count, so one good account does not reset a guessing spree on others."""
        with self._lock:
            self._failures.pop(_user_key(username), None)

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


def _user_key(username: str) -> str:
    return "user:" + username.strip().casefold()


def _ip_key(address: str) -> str:
    return "ip:" + address
