"""A blocking database read for a probe (``/readyz``, ``/metrics``), bounded in time and run
one at a time.

Such a read runs in a thread of its own, so it never holds the event loop; the answer waits
for it at most ``timeout`` seconds. A database that hangs cannot make probes pile up threads:
while one read is still running, the next probe waits for that same read again instead of
starting another. A thread call cannot be cancelled; a hung one is simply not waited for,
and its thread is a daemon, so it never keeps the process from exiting.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """``await flight.run()`` runs ``read()`` in the thread (or joins the run in progress);
    it raises ``TimeoutError`` past ``timeout`` seconds, or what ``read`` raised."""

    def __init__(self, read: Callable[[], T], *, name: str, timeout: float) -> None:
        self._read = read
        self.timeout = timeout
        self._name = name
        self._running: Future[T] | None = None

    async def run(self) -> T:
        if self._running is None or self._running.done():
            self._running = self._start()
        waiting = asyncio.wrap_future(self._running)
        return await asyncio.wait_for(asyncio.shield(waiting), self.timeout)

    def _start(self) -> Future[T]:
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()

        def work() -> None:
            try:
                future.set_result(self._read())
            except BaseException as exc:  # handed to the waiting probe
                future.set_exception(exc)

        threading.Thread(target=work, name=self._name, daemon=True).start()
        return future
