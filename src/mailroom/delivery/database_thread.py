"""The worker's database thread, and the waits on it that a stop can cut short.

Database work runs in one thread of its own, so it never stops the loop from sending; one,
because claims and outcome writes on two connections would contend for SQLite's single write
lock, and SQLite's busy handler waits in milliseconds-long sleeps.

A call in the database thread cannot be cancelled, so a stop makes the run stop *waiting* for
it (:class:`Abandoned`). The thread is a daemon, so a call stuck in it does not keep the
process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

__all__ = ["Abandoned", "DaemonThread", "DatabaseThread"]

T = TypeVar("T")


class Abandoned(Exception):  # noqa: N818 - internal control flow, never raised to callers
    """The run stopped waiting for a database call (it may still be running in the thread)."""


class DatabaseThread:
    """The worker's one database thread, with waits that end when an event is set first."""

    def __init__(self, name: str) -> None:
        # One a hung database cannot make the exit wait for.
        self.executor = DaemonThread(name)
        self.abandoned = False  # a call was left running in the database thread

    def submit(self, function: Callable[..., T], *args: Any) -> Future[T]:
        return self.executor.submit(function, *args)

    async def call(
        self, function: Callable[..., T], *args: Any, until: asyncio.Event | None = None
    ) -> T:
        """``function(*args)`` in the database thread. If ``until`` is set first, raise
        :class:`Abandoned` (the call, unless it had not started, runs on unwatched)."""
        return await self.wait(self.executor.submit(function, *args), until)

    async def wait(self, call: Future[T], until: asyncio.Event | None) -> T:
        if until is None or call.done():
            return await asyncio.wrap_future(call)
        waiting: asyncio.Future[T] = asyncio.wrap_future(call)
        signal: asyncio.Future[Any] = asyncio.ensure_future(until.wait())
        either: set[asyncio.Future[Any]] = {waiting, signal}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            signal.cancel()
        if waiting.done():
            return waiting.result()
        # Left behind: whatever it ends with is not an error to report ("never retrieved").
        waiting.add_done_callback(lambda done: done.cancelled() or done.exception())
        if not call.cancel():  # already running: it cannot be stopped, only left
            self.abandoned = True
        raise Abandoned

    async def settle(self, until: asyncio.Event) -> None:
        """A call left running at the stop (a sweep, a check) on a healthy database ends a
        moment later: wait, until ``until`` is set, for a no-op queued behind it. The
        thread runs its calls in order, so once that has run, so has every call left."""
        if not self.abandoned:
            return
        with contextlib.suppress(Abandoned):
            await self.call(_nothing, until=until)
            self.abandoned = False

    def shutdown(self) -> None:
        # No join: a call left stuck in the database must not hold the worker.
        self.executor.shutdown(wait=False)


def _nothing() -> None:
    """A call for the database thread that only marks its place in the order."""


class DaemonThread(Executor):
    """One daemon thread running the calls submitted to it in order. Unlike a
    ThreadPoolExecutor's, the interpreter does not wait for it at exit, so a call stuck in a
    database that does not answer cannot keep a stopped worker's process alive."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]
        self._calls = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        if self._thread is None:  # started on first use: a worker that never runs has none
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        future: Future[T] = Future()
        self._calls.put((future, lambda: fn(*args, **kwargs)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._calls.put(None)
        if wait and self._thread is not None:
            self._thread.join()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, function = call
            del call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function())
            except BaseException as error:  # handed to the waiting side
                future.set_exception(error)
            # Not kept alive while waiting for the next call: a claim holds message bodies.
            del future, function
