"""The delivery worker inside ``mailroom serve``: one task in the web server's event loop.

It is started by the app's lifespan and stopped when the server shuts down, after uvicorn has
stopped accepting and finished the requests in progress. The stop is the worker's own graceful
one (``WORKER_SHUTDOWN_GRACE`` for the sends in flight, the rest given back to the queue); the
wait for it is bounded in every state, so a shutdown never hangs on the worker: past the grace
and the time the last outcomes get, a second stop ends the grace at once, and past that the
task is cancelled and left (whatever it still held keeps its lease and is sent again when the
lease runs out: nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailroom.config import Settings
from mailroom.delivery.recording import RECORD_AFTER_END
from mailroom.delivery.worker import Worker, WorkerStats

__all__ = ["EmbeddedWorker"]

logger = logging.getLogger(__name__)

_AFTER_SECOND_STOP = 5.0  # seconds the run gets once the grace is ended at once
_AFTER_CANCEL = 2.0  # seconds a cancelled run gets to unwind


class EmbeddedWorker:
    """Runs ``worker`` as a task; ``on_failure(exc)`` is called if the run ends (with an error
    or not) while the server is still serving: the service then stops, since a web server
    whose worker is gone would accept mail it never sends. The worker is made by the caller
    before the server starts, so a setting it refuses is reported like any command's."""

    def __init__(self, worker: Worker, *, on_failure: Callable[[BaseException], None]) -> None:
        self.worker = worker
        self._on_failure = on_failure
        self.stats: WorkerStats | None = None
        self.error: BaseException | None = None
        self._task: asyncio.Task[WorkerStats] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._hurried = False

    @staticmethod
    def longest_stop(settings: Settings) -> float:
        """The longest :meth:`stop` can take with these settings, in seconds."""
        return _grace(settings) + _AFTER_SECOND_STOP + _AFTER_CANCEL

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the worker's run (in the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self.worker.run(), name="mailroom-embedded-worker")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[WorkerStats]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            self.stats = task.result()
            if not self._stopping:
                logger.error("the embedded worker ended on its own; stopping the service")
                self.error = RuntimeError("the embedded worker ended while the service ran")
                self._on_failure(self.error)
            return
        self.error = error
        if not self._stopping:
            logger.error("the embedded worker failed: %s; stopping the service", error)
            self._on_failure(error)

    def hurry(self) -> None:
        """End the grace at once (a second stop signal, as for ``mailroom worker``). Safe to
        call from a signal handler or another thread, before :meth:`stop` or during it: the
        worker's end that follows is the stop asked for, not a failure."""
        self._stopping = True
        self._hurried = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.worker.stop)

    async def stop(self) -> None:
        """Stop the worker gracefully, waiting a bounded time (see the module docstring)."""
        self._stopping = True
        task, worker = self._task, self.worker
        if task is None or task.done():
            return
        worker.stop()
        if not self._hurried:
            grace = _grace(worker.settings)
            if await _finished(task, grace):
                return
            logger.warning(
                "the embedded worker did not stop within %.0f s; ending its grace", grace
            )
        worker.stop()  # a second stop ends the grace at once (again, if hurried: harmless)
        if await _finished(task, _AFTER_SECOND_STOP):
            return
        logger.error("the embedded worker still runs; cancelling it (its leases expire)")
        task.cancel()
        await _finished(task, _AFTER_CANCEL)


def _grace(settings: Settings) -> float:
    """The worker's own bound on a stop: the sends' grace, then its last writes."""
    return settings.WORKER_SHUTDOWN_GRACE + RECORD_AFTER_END + 5.0


async def _finished(task: asyncio.Task[WorkerStats], seconds: float) -> bool:
    done, _pending = await asyncio.wait({task}, timeout=seconds)
    return bool(done)
