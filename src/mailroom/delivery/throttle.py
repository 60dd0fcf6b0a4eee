"""Throttling shared by every worker on one database: bursts with pauses, and rate limits.

- ``EMAIL_BURST=N`` with ``EMAIL_BURST_PAUSE=S``: send N messages, then nothing for S seconds
  after the last of them has *finished* (OnTask's semantics, made safe with many senders).
- ``EMAIL_RATE_LIMIT="10/s, 100/day"``: at most that many sends in each fixed window (the
  second, the minute, the hour, the UTC day), counted across all workers.

The counters live in ``mailroom_throttle_windows``; each grant is one short transaction that
locks the rows (``SELECT ... FOR UPDATE`` on PostgreSQL, the single writer on SQLite), so two
workers can never both take the last send of a window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from sqlalchemy import Connection, Engine, select, update

from mailroom.config import Settings, parse_rate_limits
from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import throttle_windows

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

    def _ensure_rows(self, connection: Connection) -> None:
        insert = dialect_insert(connection, throttle_windows)
        connection.execute(
            insert.on_conflict_do_nothing(index_elements=["name"]),
            [
                {"name": name, "window_start": 0.0, "granted": 0, "finished": 0}
                for name in self._names()
            ],
        )

    def _lock_rows(self, connection: Connection) -> dict[str, dict[str, float]]:
        """Lock this throttle's rows for the transaction, creating any that are missing.

        The rows are created here, in the transaction that then locks them, not once per
        process: another sender's insert may not be committed yet, and a row it promised
        would be invisible to us. ``ON CONFLICT DO NOTHING`` waits for such an insert.
        """
        locked = (
            select(throttle_windows)
            .where(throttle_windows.c.name.in_(self._names()))
            .with_for_update()
        )
        rows = {row.name: dict(row._mapping) for row in connection.execute(locked)}
        if len(rows) < len(self._names()):
            self._ensure_rows(connection)
            rows = {row.name: dict(row._mapping) for row in connection.execute(locked)}
        return rows

    def _try_acquire(self) -> float:
        """Take one send if allowed and return 0; else return how long to wait."""
        with self.engine.begin() as connection:
            rows = self._lock_rows(connection)
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
                connection.execute(
                    update(throttle_windows).where(throttle_windows.c.name == name).values(values)
                )
            return 0.0

    def _finish_burst_send(self) -> None:
        """A granted send finished; when the whole burst has, the real pause starts now."""
        with self.engine.begin() as connection:
            burst = self._lock_rows(connection)[_BURST]
            now = time.time()  # after the lock, as in _try_acquire
            finished = int(burst["finished"]) + 1
            values: dict[str, float | int | None] = {"finished": finished}
            if int(burst["granted"]) >= self.burst and finished >= int(burst["granted"]):
                values = {"granted": 0, "finished": 0, "paused_until": now + self.burst_pause}
            connection.execute(
                update(throttle_windows).where(throttle_windows.c.name == _BURST).values(values)
            )
