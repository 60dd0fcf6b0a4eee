"""How a worker stops: at once for claiming, after a grace period for the sends in flight.

Stopping (SIGTERM, :meth:`Worker.stop`) stops the claiming at once; the sends in flight get
``WORKER_SHUTDOWN_GRACE`` seconds to finish, and those still running then are cancelled,
their connections dropped and their messages given back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mailroom.transports import Transport

__all__ = ["Shutdown"]

# The worker's log, whichever of its modules writes the record.
logger = logging.getLogger("mailroom.delivery.worker")

_CLOSE_AFTER_ABORT = 1.0  # seconds a cancelled sender may spend closing its connection


class Shutdown:
    """A worker's stop: the events its tasks watch, and the bounded end of its senders."""

    def __init__(self, name: str, grace: float) -> None:
        self.name = name
        self.grace = grace  # WORKER_SHUTDOWN_GRACE
        self.stopping = asyncio.Event()
        self.abort_now = asyncio.Event()  # the grace is over (or a second stop came)
        self.stopped_at: float | None = None  # loop time of the first stop()

    def stop(self) -> None:
        if self.stopping.is_set():
            if not self.abort_now.is_set():
                logger.warning("worker %s: stopping now, aborting the sends in flight", self.name)
            self.abort_now.set()
            return
        logger.info("worker %s stopping (in-flight sends get %g s)", self.name, self.grace)
        with contextlib.suppress(RuntimeError):  # no loop yet: the grace starts with the run
            self.stopped_at = asyncio.get_running_loop().time()
        self.stopping.set()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop comes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def end_senders(self, senders: list[asyncio.Task[None]]) -> None:
        """Wait for the senders to finish their messages; once a stop has come, for at most
        the grace period, and then cancel those still sending."""
        # Without a stop (--once draining the outbox) every send runs to its end: each is
        # bounded by EMAIL_TIMEOUT in every state of the dialogue.
        busy = await _wait_while(set(senders), until=self.stopping)
        if busy:
            stopped_at = self.stopped_at or asyncio.get_running_loop().time()
            grace_ends = stopped_at + self.grace
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(grace_ends):
                    await _wait_while(busy, until=self.abort_now)
            busy = {task for task in busy if not task.done()}
            self.abort_now.set()  # senders close their connections without a QUIT now
        if busy:
            logger.warning(
                "worker %s: %d send(s) still running after WORKER_SHUTDOWN_GRACE (%g s); "
                "aborting them and giving their messages back to the queue",
                self.name,
                len(busy),
                self.grace,
            )
            for task in busy:
                task.cancel()
        for task in senders:
            try:
                await task
            except asyncio.CancelledError:
                if task not in busy:  # not ours: the whole run is being cancelled
                    raise
            except Exception:
                logger.exception("a sender ended with an error")

    async def close_transport(self, transport: Transport) -> None:
        if not self.abort_now.is_set():
            await transport.close()
            return
        # Shutting down past the grace: a QUIT may not wait on a relay that stopped answering
        # (a cancelled send has dropped its connection already; this is for idle ones).
        try:
            async with asyncio.timeout(_CLOSE_AFTER_ABORT):
                await transport.close()
        except TimeoutError:
            logger.debug("closing %s took too long; leaving it", transport.describe())


async def _wait_while(
    tasks: set[asyncio.Task[None]], *, until: asyncio.Event
) -> set[asyncio.Task[None]]:
    """Wait for ``tasks`` to end, or for ``until`` to be set; return those still running.
    (If the wait is cancelled, as by a timeout around it, the tasks keep running.)"""
    busy = {task for task in tasks if not task.done()}
    signal = asyncio.ensure_future(until.wait())
    try:
        while busy and not until.is_set():
            waiting: set[asyncio.Future[Any]] = {*busy, signal}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            busy = {task for task in busy if not task.done()}
    finally:
        signal.cancel()
    return busy
