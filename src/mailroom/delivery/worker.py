"""The worker: claims due messages under a lease, sends them over reused connections, and
writes the outcomes back in batches.

Three kinds of task share one event loop:

- the *claimer* leases batches of due messages (most urgent first) into a bounded local
  queue, and waits when the queue is full, so a worker never hoards more than it can send;
  the queue is bounded by bytes too (``WORKER_MAX_BATCH_BYTES``): the message bodies held,
  queued or being sent, stay under that budget plus one message, whatever their size;
- *senders*, ``concurrency`` of them, each with its own transport (one SMTP connection kept
  open), take messages from the queue and send them (:mod:`.sender`);
- the *recorder* writes outcomes and send-log rows in one transaction per batch
  (:mod:`.recording`).

Database work runs in one thread of its own (:mod:`.database_thread`), so it never stops the
loop from sending. A message is marked ``sent`` only after the relay's 250; if the worker
dies in between, the lease expires and the message is sent again (at-least-once). It keeps
its Message-ID, so a duplicate can be told. No send outlives its lease: one still running
when a tenth of the lease is left is cut off.

Stopping (SIGTERM, :meth:`Worker.stop`) stops the claiming at once; the sends in flight get
``WORKER_SHUTDOWN_GRACE`` seconds to finish, and those still running then are cancelled,
their connections dropped and their messages given back to the queue (:mod:`.shutdown`).

A stop is bounded even when the database hangs (a lock held by another session, a server that
stopped answering): a call in the database thread cannot be cancelled, so the run stops
*waiting* for it. A claim or check still waiting when the stop comes is left at once; the
last outcomes get ``RECORD_AFTER_END`` seconds once the senders have ended. The thread is a
daemon, so a call stuck in it does not keep the process alive; whatever it had claimed keeps
its lease and is sent again when the lease runs out (nothing is lost).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.delivery import recording
from mailroom.delivery.capture_sink import DatabaseCaptureSink
from mailroom.delivery.claims import Claims
from mailroom.delivery.companions import CompanionFactory
from mailroom.delivery.database_thread import Abandoned, DatabaseThread
from mailroom.delivery.outcomes import Outcome, WorkerStats
from mailroom.delivery.recording import Recorder
from mailroom.delivery.retry import RetryPolicy
from mailroom.delivery.sender import MessageSender
from mailroom.delivery.shutdown import Shutdown
from mailroom.delivery.throttle import Throttle
from mailroom.delivery.unfinished_sends import OutcomeBuilder
from mailroom.errors import DatabaseBusyError, DatabaseError
from mailroom.outbox.database import adopt_legacy_version, check_schema, create_outbox_engine
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.transports import Transport, transport_from_settings
from mailroom.transports.base import SendProgress

__all__ = ["Worker", "WorkerStats", "retry_policy_from_settings"]

logger = logging.getLogger(__name__)

# The worker's PostgreSQL statements (claims, outcome writes) may run or wait for a lock this
# long before they fail and are tried again; SQLite's busy timeout is as long.
_STATEMENT_TIMEOUT = 60.0
_COMPANION_STOP_WAIT = 5.0  # seconds a companion's piece of work may take to end at a stop

_CHECK_DATABASE = "Check that the database (DATABASE_URL) is reachable and writable"


def retry_policy_from_settings(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.EMAIL_MAX_ATTEMPTS,
        max_age=timedelta(seconds=settings.EMAIL_MAX_AGE),
        base_delay=timedelta(seconds=settings.EMAIL_RETRY_DELAY),
    )


class Worker:
    """Drains the outbox. ``await worker.run()``; ``worker.stop()`` ends it gracefully."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        transport_factory: Callable[[], Transport] | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        once: bool = False,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        companions: CompanionFactory | None = None,
    ) -> None:
        self.settings = settings
        self._owns_engine = engine is None
        # must_exist: a worker started in the wrong folder must not leave an empty outbox there.
        self.engine = engine or create_outbox_engine(
            settings.DATABASE_URL,
            durable=False,
            must_exist=True,
            statement_timeout=_STATEMENT_TIMEOUT,
        )
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        self.batch_size = batch_size or settings.WORKER_BATCH_SIZE
        self.max_batch_bytes = settings.WORKER_MAX_BATCH_BYTES
        self._held_bytes = 0  # message bytes in the local queue and being sent
        self.once = once
        self.name = name or f"{socket.gethostname()}:{secrets.token_hex(3)}"
        self.policy = retry_policy or retry_policy_from_settings(settings)
        # The worker's own database thread: one a hung database cannot make the exit wait for.
        self._db = DatabaseThread("mailroom-db")
        # The capture transport stores into this outbox, through the same thread.
        self.capture_sink = DatabaseCaptureSink(
            self.engine, self._db, keep=settings.CAPTURE_MAX_MESSAGES, now=self._now
        )
        self._transport_factory = transport_factory or (
            lambda: transport_from_settings(settings, capture_sink=self.capture_sink)
        )
        self.throttle = Throttle(self.engine, settings, self._db.executor)
        if self.throttle.active:
            # Hold no more than can be sent soon: a throttled worker must not hoard leases.
            self.batch_size = min(self.batch_size, self.concurrency)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.lease_token = secrets.token_hex(16)
        self.stats = WorkerStats()
        self.outcomes = OutcomeBuilder(self.policy, self.name, self._rng, self.stats)
        self._shutdown = Shutdown(self.name, settings.WORKER_SHUTDOWN_GRACE)
        self._stopping = self._shutdown.stopping
        self.claims = Claims(
            self.engine,
            settings,
            name=self.name,
            lease_token=self.lease_token,
            outcomes=self.outcomes,
            now=self._now,
        )
        self.sender = MessageSender(
            settings,
            outcomes=self.outcomes,
            throttle=self.throttle,
            stopping=self._stopping,
            add_outcome=self._add_outcome,
            now=self._now,
        )
        self.recorder = Recorder(
            self.engine,
            self._db,
            policy=self.policy,
            rng=self._rng,
            lease_token=self.lease_token,
            batch_size=self.batch_size,
            abort_now=self._shutdown.abort_now,
            now=self._now,
        )
        self.companions = list(companions(settings, self.engine)) if companions else []
        """Work beside the sending (a campaign's batches), each in a thread of its own."""
        self._queue: asyncio.Queue[ClaimedMessage | None] = asyncio.Queue()
        self._in_flight: set[int] = set()
        """Messages taken by a sender whose outcome is not yet added."""
        self._abandoned_claim: Future[tuple[list[ClaimedMessage], list[Outcome]]] | None = None

    def stop(self) -> None:
        """Stop claiming; finish what is being sent (for at most ``WORKER_SHUTDOWN_GRACE``
        seconds), give the rest back, and return. A second call ends the grace at once."""
        self._shutdown.stop()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> WorkerStats:
        if self._stopping.is_set():  # stopped before it began: nothing to do, nothing wrong
            return self.stats
        try:
            return await self._run()
        finally:
            # However the run ended (a failed start-up check, its tasks cancelled with the
            # loop), its database thread ends with it: a process that runs worker after
            # worker (a Celery pool's child) must not collect threads.
            self._db.shutdown()
            if self._owns_engine:
                self.engine.dispose()

    async def _run(self) -> WorkerStats:
        try:
            # A stop while the database does not answer these ends the run: nothing is
            # claimed yet.
            await self._db.call(adopt_legacy_version, self.engine, until=self._stopping)
            await self._db.call(check_schema, self.engine, until=self._stopping)
        except Abandoned:
            raise DatabaseError(
                "DATABASE_URL: the worker was stopped before the database answered its "
                f"start-up checks; it claimed nothing. {_CHECK_DATABASE}"
            ) from None
        for companion in self.companions:
            companion.start()
        recorder = asyncio.create_task(self.recorder.run(), name="mailroom-recorder")
        senders = [
            asyncio.create_task(self._sender(), name=f"mailroom-sender-{i}")
            for i in range(self.concurrency)
        ]
        try:
            await self._claimer()
        finally:
            for companion in self.companions:
                # Its piece of work under way is one transaction: done, or not written.
                await asyncio.to_thread(companion.stop, _COMPANION_STOP_WAIT)
            # Whatever is still queued locally goes back to the outbox untouched; then each
            # sender finishes the message it holds and meets its end-of-work marker.
            self._release_queued()
            for _ in senders:
                self._queue.put_nowait(None)
            await self._shutdown.end_senders(senders)
            # From now on the database gets a bounded time to take the last outcomes.
            give_up = self.recorder.last_writes()
            await self._settle_abandoned_claim()
            await self._db.settle(until=self.recorder.give_up)
            self.recorder.finish()
            unrecorded = await recorder
            give_up.cancel()
        if self._db.abandoned and not unrecorded:
            raise DatabaseError(
                "DATABASE_URL: the database did not answer within "
                f"{recording.RECORD_AFTER_END:g} s of the stop; the worker ended without "
                "waiting for it. Messages it may have claimed meanwhile stay 'sending' until "
                "their lease (WORKER_LEASE_SECONDS) runs out and are then sent again. "
                f"{_CHECK_DATABASE}"
            )
        if unrecorded:
            raise DatabaseError(
                f"DATABASE_URL: the worker could not record what happened to {unrecorded} "
                "message(s) before it ended; they stay 'sending' until their lease "
                f"(WORKER_LEASE_SECONDS) runs out and another worker sends them again. "
                f"{_CHECK_DATABASE}"
            )
        return self.stats

    def _now(self) -> float:
        return time.time()

    # -- claiming ------------------------------------------------------------------------

    async def _claimer(self) -> None:
        last_sweep = 0.0
        while not self._stopping.is_set():
            now = self._now()
            if now - last_sweep > min(5.0, self.settings.WORKER_LEASE_SECONDS / 4):
                try:
                    if await self.claims.sweep_expired(self._db, now, until=self._stopping):
                        last_sweep = now
                except Abandoned:
                    return
            room = self.batch_size * 2 - self._queue.qsize()
            # Claimed but unrecorded messages are bounded too, so a recorder that cannot
            # write (database away) stops the sending instead of piling outcomes up.
            budget = self.max_batch_bytes - self._held_bytes
            pending = self.recorder.pending
            if room >= self.batch_size and pending < self.batch_size * 4 and budget > 0:
                claim = self._db.submit(self.claims.claim, self.batch_size, budget)
                try:
                    claimed, withheld = await self._db.wait(claim, self._stopping)
                except Abandoned:
                    if not claim.cancelled():
                        self._abandoned_claim = claim
                    return
                except DatabaseBusyError as error:
                    # Behind another session's lock past the statement timeout: nothing was
                    # claimed; try again rather than end the worker.
                    logger.warning("worker %s: could not claim: %s; retrying", self.name, error)
                    await self._shutdown.sleep(self.settings.WORKER_POLL_INTERVAL)
                    continue
                self.recorder.pending += len(claimed) + len(withheld)
                for message in claimed:
                    self._held_bytes += len(message.data)
                    self._queue.put_nowait(message)
                for outcome in withheld:
                    self._add_outcome(outcome)
                if claimed or withheld:
                    continue
                # Nothing due. In --once mode we are done when nothing is left unrecorded:
                # recorded outcomes cannot make more work due "now" except a stream pause
                # ending, which --once does not wait for.
                if (
                    self.once
                    and (self.recorder.pending == 0 or self._only_unrecordable_left())
                    and all(companion.idle for companion in self.companions)
                ):
                    return
            await self._shutdown.sleep(self.settings.WORKER_POLL_INTERVAL)

    def _only_unrecordable_left(self) -> bool:
        """Whether all that --once still waits for is outcomes the database keeps refusing:
        nothing queued or being sent. Then the run ends, and the recorder has its bounded
        last tries (see Recorder.run) instead of holding the worker for ever."""
        recorder = self.recorder
        return (
            recorder.failing and self._queue.empty() and recorder.pending == len(recorder.outcomes)
        )

    async def _settle_abandoned_claim(self) -> None:
        """A claim left running at the stop: if it finishes in the bounded time, give what it
        claimed back to the queue now rather than when its lease runs out."""
        claim, self._abandoned_claim = self._abandoned_claim, None
        if claim is None or claim.cancelled():
            return
        try:
            claimed, withheld = await self._db.wait(claim, self.recorder.give_up)
        except Abandoned:
            return
        except Exception:  # it failed: it claimed nothing
            self._db.abandoned = False
            return
        self._db.abandoned = False
        self.recorder.pending += len(claimed) + len(withheld)
        for message in claimed:
            self._add_outcome(self.outcomes.released(message))
        for outcome in withheld:
            self._add_outcome(outcome)

    # -- sending -------------------------------------------------------------------------

    async def _sender(self) -> None:
        transport = self._transport_factory()
        try:
            while (message := await self._queue.get()) is not None:
                self._in_flight.add(message.id)
                started = time.perf_counter()
                progress = SendProgress()  # what the relay has accepted so far
                try:
                    await self.sender.handle(transport, message, progress)
                except asyncio.CancelledError:
                    if message.id in self._in_flight and self._shutdown.abort_now.is_set():
                        # Aborted at the end of the grace period: unless its outcome is in,
                        # the message goes back to the queue rather than waiting for its
                        # lease (but for the recipients the relay already accepted).
                        duration = time.perf_counter() - started
                        outcome = self.outcomes.interrupted(transport, message, progress, duration)
                        self._add_outcome(outcome)
                    elif message.id in self._in_flight:
                        # Not our abort: the whole run is being cancelled (its loop torn
                        # down), the recorder with it, so nothing more will be written.
                        logger.warning(
                            "message %s: the worker's run was cancelled during its send; "
                            "it stays 'sending' until its lease (WORKER_LEASE_SECONDS) runs "
                            "out, and is then sent again",
                            message.id,
                        )
                    raise
                except Exception:
                    # Never lose a message to a bug or a database hiccup here: it was not
                    # sent (delivery errors are handled inside), so it goes back to the queue.
                    logger.exception("sender failed on message %s; re-queueing it", message.id)
                    self._add_outcome(self.outcomes.released(message))
                finally:
                    self._in_flight.discard(message.id)
                    self._held_bytes -= len(message.data)
                # Not kept alive while waiting for the next one: it may be megabytes.
                del message
        finally:
            await self._shutdown.close_transport(transport)

    def _add_outcome(self, outcome: Outcome) -> None:
        self._in_flight.discard(outcome.message.id)
        self.recorder.add(outcome)

    def _release_queued(self) -> None:
        while not self._queue.empty():
            message = self._queue.get_nowait()
            if message is not None:
                self._held_bytes -= len(message.data)
                self._add_outcome(self.outcomes.released(message))
