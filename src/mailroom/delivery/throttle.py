"""Throttling shared by every worker on one database: bursts with pauses, and rate limits.

- ``EMAIL_BURST=N`` with ``EMAIL_BURST_PAUSE=S``: send N messages, then nothing for S seconds
  after the last of them has *finished* (OnTask's semantics, made safe with many senders).
- ``EMAIL_RATE_LIMIT="10/s, 100/day"``: at most that many sends in each fixed window (the
  second, the minute, the hour, the UTC day), counted across all workers.

The counters live in ``mailroom_throttle_windows``; each grant is one short transaction that
locks the rows (``SELECT ... FOR UPDATE`` on PostgreSQL, the single writer on SQLite), so two
workers can never both take the last send of a window. The statements are in
:mod:`mailroom.outbox.stream_queries`; this module decides what to grant.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from sqlalchemy import Engine

from mailroom.config import Settings, parse_rate_limits
from mailroom.outbox import stream_queries

__all__ = ["Throttle"]

_BURST = "burst"
T = TypeVar("T")

_MAX_WAIT = 1.0  # re-check at least this often, so a stopping worker is not kept waiting


def _window_name(seconds: float) -> str:
    return f"{seconds:g}s"


class Throttle:
    """Grants sends one at a time: ``await acquire()`` before sending, ``await release()``
    after. Does nothing (and touches no database) when no limit is configured."""

    def __init__(
        self, engine: Engine, settings: Settings, executor: Executor | None = None
    ) -> None:
        """``executor``: where the transactions run (the worker's database thread); by
        default, asyncio's default executor."""
        self.engine = engine
        self._executor = executor
        self.limits = parse_rate_limits(settings.EMAIL_RATE_LIMIT)
        self.burst = settings.EMAIL_BURST
        self.burst_pause = settings.EMAIL_BURST_PAUSE
        # While the last sends of a burst are still in flight the pause cannot be dated yet;
        # this provisional pause covers a worker that dies before telling us they finished.
        self._provisional = self.burst_pause + 2 * settings.EMAIL_TIMEOUT
        self.active = bool(self.limits or self.burst)

    async def acquire(self, stopping: asyncio.Event | None = None) -> bool:
        """Wait for a send to be allowed and take it; False if ``stopping`` was set first."""
        if not self.active:
            return True
        while (wait := await self._in_thread(self._try_acquire)) > 0:
            if stopping is not None:
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=min(wait, _MAX_WAIT))
                except TimeoutError:
                    continue
                return False
            await asyncio.sleep(min(wait, _MAX_WAIT))
        return True

    async def release(self) -> None:
        if self.burst:
            await self._in_thread(self._finish_burst_send)

    async def _in_thread(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    # -- the transactions ----------------------------------------------------------------

    def _names(self) -> list[str]:
        names = [_window_name(seconds) for _, seconds in self.limits]
        return [*names, _BURST] if self.burst else names

    def _try_acquire(self) -> float:
        """Take one send if allowed and return 0; else return how long to wait."""
        with self.engine.begin() as connection:
            rows = stream_queries.lock_throttle_windows(connection, self._names())
            # Read the clock only once the rows are ours: a time taken before waiting for the
            # lock could be older than another worker's last send.
            now = time.time()
            wait = 0.0
            changes: dict[str, dict[str, float | None]] = {}
            for count, seconds in self.limits:
                name = _window_name(seconds)
                start = math.floor(now / seconds) * seconds
                granted = rows[name]["granted"] if rows[name]["window_start"] == start else 0
                if granted >= count:
                    wait = max(wait, start + seconds - now)
                changes[name] = {"window_start": start, "granted": granted + 1}
            if self.burst:
                burst = rows[_BURST]
                paused_until = burst["paused_until"] or 0.0
                granted, finished = int(burst["granted"]), int(burst["finished"])
                if paused_until > now:
                    wait = max(wait, paused_until - now)
                elif granted >= self.burst and paused_until:
                    granted = finished = 0  # the provisional pause ran out: start afresh
                changes[_BURST] = {"granted": granted + 1, "finished": finished}
                if granted + 1 >= self.burst:
                    changes[_BURST]["paused_until"] = now + self._provisional
                elif paused_until and paused_until <= now:
                    changes[_BURST]["paused_until"] = None
            if wait > 0:
                return wait
            for name, values in changes.items():
                stream_queries.update_throttle_window(connection, name, values)
            return 0.0

    def _finish_burst_send(self) -> None:
        """A granted send finished; when the whole burst has, the real pause starts now."""
        with self.engine.begin() as connection:
            burst = stream_queries.lock_throttle_windows(connection, self._names())[_BURST]
            now = time.time()  # after the lock, as in _try_acquire
            finished = int(burst["finished"]) + 1
            values: dict[str, float | int | None] = {"finished": finished}
            if int(burst["granted"]) >= self.burst and finished >= int(burst["granted"]):
                values = {"granted": 0, "finished": 0, "paused_until": now + self.burst_pause}
            stream_queries.update_throttle_window(connection, _BURST, values)
