"""The worker: claims due messages under a lease, sends them over reused connections, and
writes the outcomes back in batches.

Three kinds of task share one event loop:

- the *claimer* leases batches of due messages (most urgent first) into a bounded local
  queue, and waits when the queue is full, so a worker never hoards more than it can send;
  the queue is bounded by bytes too (``WORKER_MAX_BATCH_BYTES``): the message bodies held,
  queued or being sent, stay under that budget plus one message, whatever their size;
- *senders*, ``concurrency`` of them, each with its own transport (one SMTP connection kept
  open), take messages from the queue and send them;
- the *recorder* writes outcomes and send-log rows in one transaction per batch.

Database work runs in one thread of its own, so it never stops the loop from sending; one,
because claims and outcome writes on two connections would contend for SQLite's single write
lock, and SQLite's busy handler waits in milliseconds-long sleeps. A message is marked
``sent`` only after the relay's 250; if the worker dies in between, the lease expires and the
message is sent again (at-least-once). It keeps its Message-ID, so a duplicate can be told.
No send outlives its lease: one still running when a tenth of the lease is left is cut off.

Stopping (SIGTERM, :meth:`Worker.stop`) stops the claiming at once; the sends in flight get
``WORKER_SHUTDOWN_GRACE`` seconds to finish, and those still running then are cancelled,
their connections dropped and their messages given back to the queue.

A stop is bounded even when the database hangs (a lock held by another session, a server that
stopped answering): a call in the database thread cannot be cancelled, so the run stops
*waiting* for it. A claim or check still waiting when the stop comes is left at once; the
last outcomes get ``_RECORD_AFTER_END`` seconds once the senders have ended. The thread is a
daemon, so a call stuck in it does not keep the process alive; whatever it had claimed keeps
its lease and is sent again when the lease runs out (nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.delivery.outcomes import (
    Outcome,
    OutcomeBuilder,
    WorkerStats,
    flag_unanswered,
    partial_result,
)
from mailroom.delivery.retry import PauseStream, RetryPolicy
from mailroom.delivery.throttle import Throttle
from mailroom.errors import (
    DatabaseBusyError,
    DatabaseError,
    DeliveryError,
    DeliveryTimeoutError,
    TransientError,
)
from mailroom.message import Envelope
from mailroom.outbox import queries
from mailroom.outbox.database import adopt_legacy_version, check_schema, create_outbox_engine
from mailroom.outbox.queries import ClaimedMessage
from mailroom.outbox.schema import Status
from mailroom.transports import Transport, transport_from_settings
from mailroom.transports.base import SendProgress
from mailroom.transports.doctor import diagnose
from mailroom.transports.smtp_replies import format_reply
from mailroom.unsubscribe import suppressed_for_messages

__all__ = ["Worker", "WorkerStats", "retry_policy_from_settings"]

logger = logging.getLogger(__name__)
send_log = logging.getLogger("mailroom.sendlog")
"""One record per attempt and recipient, with the fields in ``extra``; see mailroom.logs."""

T = TypeVar("T")

_RECORD_EVERY = 0.05  # seconds: how long outcomes may wait to be written in one batch
_RECORD_RETRY = 1.0  # seconds before writing outcomes again after the database failed
_CLOSE_AFTER_ABORT = 1.0  # seconds a cancelled sender may spend closing its connection
# Once every sender has ended, how long the recorder keeps trying to write the last outcomes
# to a database that refuses them, or waits for one that does not answer: a worker must end
# in bounded time even with its database gone.
_RECORD_AFTER_END = 10.0
# The worker's PostgreSQL statements (claims, outcome writes) may run or wait for a lock this
# long before they fail and are tried again; SQLite's busy timeout is as long.
_STATEMENT_TIMEOUT = 60.0


class _Abandoned(Exception):  # noqa: N818 - internal control flow, never raised to callers
    """The run stopped waiting for a database call (it may still be running in the thread)."""


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
        self._transport_factory = transport_factory or (lambda: transport_from_settings(settings))
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        self.batch_size = batch_size or settings.WORKER_BATCH_SIZE
        self.max_batch_bytes = settings.WORKER_MAX_BATCH_BYTES
        self._held_bytes = 0  # message bytes in the local queue and being sent
        self.once = once
        self.name = name or f"{socket.gethostname()}:{secrets.token_hex(3)}"
        self.policy = retry_policy or retry_policy_from_settings(settings)
        # The worker's own database thread: one a hung database cannot make the exit wait for.
        self._db_thread = _DaemonThread("mailroom-db")
        self.throttle = Throttle(self.engine, settings, self._db_thread)
        # None may outlive its lease: a relay that reads slowly but steadily never trips
        # EMAIL_TIMEOUT, which bounds each wait, not the whole. A send is cut off this long
        # before its lease ends, which leaves the time to record its outcome while the lease
        # still holds.
        self._cutoff_margin = settings.WORKER_LEASE_SECONDS / 10
        # Time a send may take before its lease runs out: never start one with less left
        # (and never one that would be cut off before it had a fair part of the lease).
        self._lease_margin = max(
            min(2 * settings.EMAIL_TIMEOUT, settings.WORKER_LEASE_SECONDS / 2),
            2 * self._cutoff_margin,
        )
        if self.throttle.active:
            # Hold no more than can be sent soon: a throttled worker must not hoard leases.
            self.batch_size = min(self.batch_size, self.concurrency)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.lease_token = secrets.token_hex(16)
        self.stats = WorkerStats()
        self.outcomes = OutcomeBuilder(self.policy, self.name, self._rng, self.stats)
        self._queue: asyncio.Queue[ClaimedMessage | None] = asyncio.Queue()
        self._outcomes: list[Outcome] = []
        self._outcome_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._abort_now = asyncio.Event()  # the grace is over (or a second stop came)
        self._stopped_at: float | None = None  # loop time of the first stop()
        self._in_flight: set[int] = set()
        """Messages taken by a sender whose outcome is not yet added."""
        self._finished = False
        self._pending = 0  # claimed and not yet recorded
        self._paused_here: dict[str, float] = {}  # stream -> until, as this worker knows it
        self._record_failing = False  # the latest write of outcomes failed
        self._give_up = asyncio.Event()  # stop waiting for the database (see run)
        self._abandoned_claim: Future[tuple[list[ClaimedMessage], list[Outcome]]] | None = None
        self._db_abandoned = False  # a call was left running in the database thread

    def stop(self) -> None:
        """Stop claiming; finish what is being sent (for at most ``WORKER_SHUTDOWN_GRACE``
        seconds), give the rest back, and return. A second call ends the grace at once."""
        if self._stopping.is_set():
            if not self._abort_now.is_set():
                logger.warning("worker %s: stopping now, aborting the sends in flight", self.name)
            self._abort_now.set()
            return
        grace = self.settings.WORKER_SHUTDOWN_GRACE
        logger.info("worker %s stopping (in-flight sends get %g s)", self.name, grace)
        with contextlib.suppress(RuntimeError):  # no loop yet: the grace starts with the run
            self._stopped_at = asyncio.get_running_loop().time()
        self._stopping.set()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> WorkerStats:
        if self._stopping.is_set():  # stopped before it began: nothing to do, nothing wrong
            return self.stats
        try:
            # A stop while the database does not answer these ends the run: nothing is
            # claimed yet.
            await self._in_db_thread(adopt_legacy_version, self.engine, until=self._stopping)
            await self._in_db_thread(check_schema, self.engine, until=self._stopping)
        except _Abandoned:
            self._db_thread.shutdown(wait=False)
            raise DatabaseError(
                "DATABASE_URL: the worker was stopped before the database answered its "
                f"start-up checks; it claimed nothing. {_CHECK_DATABASE}"
            ) from None
        recorder = asyncio.create_task(self._recorder(), name="mailroom-recorder")
        senders = [
            asyncio.create_task(self._sender(), name=f"mailroom-sender-{i}")
            for i in range(self.concurrency)
        ]
        try:
            await self._claimer()
        finally:
            # Whatever is still queued locally goes back to the outbox untouched; then each
            # sender finishes the message it holds and meets its end-of-work marker.
            self._release_queued()
            for _ in senders:
                self._queue.put_nowait(None)
            await self._end_senders(senders)
            # From now on the database gets a bounded time to take the last outcomes.
            give_up = asyncio.get_running_loop().call_later(_RECORD_AFTER_END, self._give_up.set)
            await self._settle_abandoned_claim()
            await self._settle_abandoned_calls()
            self._finished = True
            self._outcome_ready.set()
            unrecorded = await recorder
            give_up.cancel()
            # No join: a call left stuck in the database must not hold the worker.
            self._db_thread.shutdown(wait=False)
            if self._owns_engine:
                self.engine.dispose()
        if self._db_abandoned and not unrecorded:
            raise DatabaseError(
                f"DATABASE_URL: the database did not answer within {_RECORD_AFTER_END:g} s of "
                "the stop; the worker ended without waiting for it. Messages it may have "
                "claimed meanwhile stay 'sending' until their lease (WORKER_LEASE_SECONDS) "
                f"runs out and are then sent again. {_CHECK_DATABASE}"
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

    async def _end_senders(self, senders: list[asyncio.Task[None]]) -> None:
        """Wait for the senders to finish their messages; once a stop has come, for at most
        the grace period, and then cancel those still sending."""
        # Without a stop (--once draining the outbox) every send runs to its end: each is
        # bounded by EMAIL_TIMEOUT in every state of the dialogue.
        busy = await _wait_while(set(senders), until=self._stopping)
        if busy:
            stopped_at = self._stopped_at or asyncio.get_running_loop().time()
            grace_ends = stopped_at + self.settings.WORKER_SHUTDOWN_GRACE
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(grace_ends):
                    await _wait_while(busy, until=self._abort_now)
            busy = {task for task in busy if not task.done()}
            self._abort_now.set()  # senders close their connections without a QUIT now
        if busy:
            logger.warning(
                "worker %s: %d send(s) still running after WORKER_SHUTDOWN_GRACE (%g s); "
                "aborting them and giving their messages back to the queue",
                self.name,
                len(busy),
                self.settings.WORKER_SHUTDOWN_GRACE,
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

    async def _in_db_thread(
        self, function: Callable[..., T], *args: Any, until: asyncio.Event | None = None
    ) -> T:
        """``function(*args)`` in the database thread. If ``until`` is set first, raise
        :class:`_Abandoned` (the call, unless it had not started, runs on unwatched)."""
        return await self._wait_for_db(self._db_thread.submit(function, *args), until)

    async def _wait_for_db(self, call: Future[T], until: asyncio.Event | None) -> T:
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
            self._db_abandoned = True
        raise _Abandoned

    async def _settle_abandoned_claim(self) -> None:
        """A claim left running at the stop: if it finishes in the bounded time, give what it
        claimed back to the queue now rather than when its lease runs out."""
        claim, self._abandoned_claim = self._abandoned_claim, None
        if claim is None or claim.cancelled():
            return
        try:
            claimed, withheld = await self._wait_for_db(claim, self._give_up)
        except _Abandoned:
            return
        except Exception:  # it failed: it claimed nothing
            self._db_abandoned = False
            return
        self._db_abandoned = False
        self._pending += len(claimed) + len(withheld)
        for message in claimed:
            self._add_outcome(self._released(message))
        for outcome in withheld:
            self._add_outcome(outcome)

    async def _settle_abandoned_calls(self) -> None:
        """A call left running at the stop (a sweep, a check) on a healthy database ends a
        moment later: wait, within the bounded time, for a no-op queued behind it. The
        thread runs its calls in order, so once that has run, so has every call left."""
        if not self._db_abandoned:
            return
        with contextlib.suppress(_Abandoned):
            await self._in_db_thread(_nothing, until=self._give_up)
            self._db_abandoned = False

    async def _claimer(self) -> None:
        last_sweep = 0.0
        while not self._stopping.is_set():
            now = self._now()
            if now - last_sweep > min(5.0, self.settings.WORKER_LEASE_SECONDS / 4):
                try:
                    if await self._sweep_expired(now):
                        last_sweep = now
                except _Abandoned:
                    return
            room = self.batch_size * 2 - self._queue.qsize()
            # Claimed but unrecorded messages are bounded too, so a recorder that cannot
            # write (database away) stops the sending instead of piling outcomes up.
            budget = self.max_batch_bytes - self._held_bytes
            if room >= self.batch_size and self._pending < self.batch_size * 4 and budget > 0:
                claim = self._db_thread.submit(self._claim, self.batch_size, budget)
                try:
                    claimed, withheld = await self._wait_for_db(claim, self._stopping)
                except _Abandoned:
                    if not claim.cancelled():
                        self._abandoned_claim = claim
                    return
                except DatabaseBusyError as error:
                    # Behind another session's lock past the statement timeout: nothing was
                    # claimed; try again rather than end the worker.
                    logger.warning("worker %s: could not claim: %s; retrying", self.name, error)
                    await self._sleep(self.settings.WORKER_POLL_INTERVAL)
                    continue
                self._pending += len(claimed) + len(withheld)
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
                if self.once and (self._pending == 0 or self._only_unrecordable_left()):
                    return
            await self._sleep(self.settings.WORKER_POLL_INTERVAL)

    async def _sweep_expired(self, now: float) -> bool:
        """Re-queue messages whose worker's lease ran out; whether the sweep was done."""
        try:
            requeued = await self._in_db_thread(self._sweep, now, until=self._stopping)
        except DatabaseBusyError as error:  # tried again on the next round
            logger.warning("worker %s: could not sweep: %s", self.name, error)
            return False
        for message_pk, message_id in requeued:
            logger.warning(
                "re-queued message %s %s: its worker's lease expired; if that worker "
                "sent it before dying, this will be a duplicate",
                message_pk,
                message_id,
                extra={"message_pk": message_pk, "message_id": message_id},
            )
        return True

    def _only_unrecordable_left(self) -> bool:
        """Whether all that --once still waits for is outcomes the database keeps refusing:
        nothing queued or being sent. Then the run ends, and the recorder has its bounded
        last tries (see _recorder) instead of holding the worker for ever."""
        return self._record_failing and self._queue.empty() and self._pending == len(self._outcomes)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _sweep(self, now: float) -> list[tuple[int, str]]:
        with self.engine.begin() as connection:
            return queries.recover_expired_leases(connection, now)

    def _claim(self, limit: int, max_bytes: int) -> tuple[list[ClaimedMessage], list[Outcome]]:
        """Due messages to send, and outcomes for those whose every recipient is suppressed."""
        now = self._now()
        with self.engine.begin() as connection:
            claimed = queries.claim_due(
                connection,
                now=now,
                limit=limit,
                lease_token=self.lease_token,
                lease_until=now + self.settings.WORKER_LEASE_SECONDS,
                max_bytes=max_bytes,
            )
            # Checked now, not only at enqueue: an unsubscribe or a bounce may have come in
            # since the message was queued.
            suppressed = suppressed_for_messages(connection, [m.id for m in claimed], now)
        if not suppressed:
            return claimed, []
        deliverable, withheld = [], []
        for message in claimed:
            reasons = suppressed.get(message.id, {})
            remaining = tuple(r for r in message.recipients if r not in reasons)
            if remaining:
                deliverable.append(message._replace(recipients=remaining))
            else:
                withheld.append(self.outcomes.suppressed(message, reasons))
        return deliverable, withheld

    async def _sender(self) -> None:
        transport = self._transport_factory()
        try:
            while (message := await self._queue.get()) is not None:
                self._in_flight.add(message.id)
                started = time.perf_counter()
                progress = SendProgress()  # what the relay has accepted so far
                try:
                    await self._handle(transport, message, progress)
                except asyncio.CancelledError:
                    # Aborted at the end of the grace period: unless its outcome is in, the
                    # message goes back to the queue rather than waiting for its lease (but
                    # for the recipients the relay already accepted).
                    if message.id in self._in_flight:
                        duration = time.perf_counter() - started
                        outcome = self.outcomes.interrupted(transport, message, progress, duration)
                        self._add_outcome(outcome)
                    raise
                except Exception:
                    # Never lose a message to a bug or a database hiccup here: it was not
                    # sent (delivery errors are handled inside), so it goes back to the queue.
                    logger.exception("sender failed on message %s; re-queueing it", message.id)
                    self._add_outcome(self._released(message))
                finally:
                    self._in_flight.discard(message.id)
                    self._held_bytes -= len(message.data)
                # Not kept alive while waiting for the next one: it may be megabytes.
                del message
        finally:
            await self._close_transport(transport)

    async def _close_transport(self, transport: Transport) -> None:
        if not self._abort_now.is_set():
            await transport.close()
            return
        # Shutting down past the grace: a QUIT may not wait on a relay that stopped answering
        # (a cancelled send has dropped its connection already; this is for idle ones).
        try:
            async with asyncio.timeout(_CLOSE_AFTER_ABORT):
                await transport.close()
        except TimeoutError:
            logger.debug("closing %s took too long; leaving it", transport.describe())

    async def _handle(
        self, transport: Transport, message: ClaimedMessage, progress: SendProgress
    ) -> None:
        pause = self._paused_here.get(message.stream)
        if pause is not None and pause > self._now():
            self._add_outcome(self._released(message))
            return
        if not await self.throttle.acquire(self._stopping):
            self._add_outcome(self._released(message))
            return
        # A long throttle wait can outlast the lease; then another worker may already hold
        # the message, and sending it here would send it twice.
        if message.lease_expires_at - self._now() < self._lease_margin:
            self._add_outcome(self._released(message))
            return
        outcome = await self._deliver(transport, message, progress)
        self._add_outcome(outcome)
        try:
            await self.throttle.release()
        except Exception:  # the outcome is safe; a missed burst count only shortens a pause
            logger.exception("could not record the end of a throttled send")

    def _add_outcome(self, outcome: Outcome) -> None:
        self._in_flight.discard(outcome.message.id)
        # The recorder needs the message's id and stream, never its bytes: drop them now
        # rather than hold every body until the batch of outcomes is written.
        outcome.message = outcome.message._replace(data=b"")
        self._outcomes.append(outcome)
        if len(self._outcomes) >= self.batch_size:
            self._outcome_ready.set()

    # -- one message ---------------------------------------------------------------------

    async def _deliver(
        self, transport: Transport, message: ClaimedMessage, progress: SendProgress
    ) -> Outcome:
        envelope = Envelope(
            sender=message.sender,
            recipients=message.recipients,
            data=message.data,
            message_id=message.message_id,
            smtputf8=message.smtputf8,
        )
        started = time.perf_counter()
        cutoff = message.lease_expires_at - self._cutoff_margin - self._now()
        bound = asyncio.timeout(max(cutoff, 0.0))
        try:
            async with bound:
                result = await transport.send(envelope, progress)
        except DeliveryError as error:
            failure = error
        except Exception as error:
            if bound.expired():  # the send ran out of lease (a TimeoutError from the bound)
                failure = self._cut_off(time.perf_counter() - started)
            else:  # a bug, not the relay: keep the message, log the traceback
                logger.exception("unexpected error sending message %s", message.id)
                failure = TransientError(f"unexpected error: {type(error).__name__}: {error}")
            # Cut off after the final dot of a transaction: its recipients may have it.
            failure = flag_unanswered(failure, message, progress)
            if progress.accepted:  # those have it: only the others are tried again
                result = partial_result(message, transport, progress, failure)
                duration = time.perf_counter() - started
                return self.outcomes.sent(transport, message, result, duration)
        else:
            return self.outcomes.sent(transport, message, result, time.perf_counter() - started)
        outcome = self.outcomes.failed(transport, message, failure, time.perf_counter() - started)
        if outcome.pause is not None:
            outcome.pause = self._pausing(message, outcome.pause, failure)
        return outcome

    def _cut_off(self, took: float) -> DeliveryError:
        return DeliveryTimeoutError(
            f"the send was cut off after {took:.1f} s, before the message's lease "
            f"(WORKER_LEASE_SECONDS={self.settings.WORKER_LEASE_SECONDS:g}) ran out and another "
            "worker could send it too; the relay reads too slowly for its size (raise "
            "WORKER_LEASE_SECONDS for large messages over a slow link)"
        )

    def _pausing(
        self, message: ClaimedMessage, pause: PauseStream, error: DeliveryError
    ) -> PauseStream:
        """The first message of a stream to hit a configuration error pauses it here, logs it
        (once: the others in flight come back with the same error) and stores the advice with
        the reason, for ``mailroom status`` and ``mailroom streams list``."""
        known = self._paused_here.get(message.stream)
        self._paused_here[message.stream] = pause.until.timestamp()
        advice = diagnose(error, self.settings, sender_setting=self._sender_setting(message))
        if known is None or known <= self._now():
            logger.error(
                "pausing stream %s: %s. %s",
                message.stream,
                pause.reason,
                " ".join(advice.splitlines()),
                extra={"stream": message.stream},
            )
        return replace(pause, reason=f"{pause.reason}\n{advice}")

    def _sender_setting(self, message: ClaimedMessage) -> str:
        """The setting the refused sender came from, for the advice."""
        sender = message.sender.lower()
        for name, value in (
            ("DEFAULT_FROM_EMAIL", self.settings.DEFAULT_FROM_EMAIL),
            ("NOREPLY_EMAIL_ADDRESS", self.settings.noreply_address),
        ):
            if sender and sender in value.lower():
                return name
        return "DEFAULT_FROM_EMAIL (or the from_email the application passes)"

    def _released(self, message: ClaimedMessage) -> Outcome:
        return self.outcomes.released(message)

    def _release_queued(self) -> None:
        while not self._queue.empty():
            message = self._queue.get_nowait()
            if message is not None:
                self._held_bytes -= len(message.data)
                self._add_outcome(self._released(message))

    # -- writing outcomes ----------------------------------------------------------------

    async def _recorder(self) -> int:
        """Write outcomes in batches until the run has finished and all are written; return
        how many could not be written before giving up (0 but for a database gone at the end).
        """
        give_up_at: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outcome_ready.wait(), timeout=_RECORD_EVERY)
            self._outcome_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                try:
                    await self._in_db_thread(self._record, batch, until=self._give_up)
                except _Abandoned:
                    # The database has not answered for the bounded time after the end:
                    # these outcomes may or may not be written; the messages keep their lease.
                    return len(batch) + len(self._outcomes)
                except Exception:
                    # The database is away or refused the write: keep every outcome and try
                    # again; the claimer stops taking more while these wait (see _claimer).
                    logger.exception("could not record %d outcomes; retrying", len(batch))
                    self._outcomes[:0] = batch
                    self._record_failing = True
                    if self._finished:
                        # Nothing more will be sent; keep trying for a bounded time only. The
                        # unrecorded messages keep their lease and are not lost.
                        now = asyncio.get_running_loop().time()
                        if give_up_at is None:
                            give_up_at = now + _RECORD_AFTER_END
                        if now >= give_up_at or self._abort_now.is_set():
                            return len(self._outcomes)
                    await asyncio.sleep(_RECORD_RETRY)
                    continue
                self._pending -= len(batch)
                self._record_failing = False
            if self._finished and not self._outcomes:
                return 0

    def _record(self, batch: list[Outcome]) -> None:
        now = self._now()
        rows = [row for outcome in batch for row in outcome.attempt_rows]
        with self.engine.begin() as connection:
            # One pause per stream per batch, however many of its messages hit the problem.
            pauses = {o.message.stream: o.pause for o in batch if o.pause is not None}
            for stream, pause in pauses.items():
                streak = queries.consecutive_pauses(connection, stream)
                until = now + self.policy.pause(streak, self._rng).total_seconds()
                queries.pause_stream(connection, stream, until=until, reason=pause.reason)
            # Follow-ups first: one may keep its source's last error, which completing the
            # source (sent) clears.
            for outcome in batch:
                for followup in outcome.followups:
                    reply = followup.reply
                    queries.insert_followup(
                        connection,
                        outcome.message.id,
                        followup.recipients,
                        due_at=followup.due_at,
                        now=now,
                        error=(reply.server_text or str(reply)) if reply else None,
                        code=reply.code if reply else None,
                        enhanced_status=reply.enhanced_status if reply else None,
                        attempts=followup.attempts,
                        keep_error=followup.keep_error,
                    )
            held = queries.complete(
                connection, [o.completion for o in batch], self.lease_token, now
            )
            queries.record_attempts(connection, rows)
            healthy = {o.message.stream for o in batch if o.completion.status is Status.SENT}
            for stream in healthy - pauses.keys():
                queries.resume_stream(connection, stream)
        if held < len(batch):
            logger.warning(
                "%d of %d outcomes were for messages whose lease had expired; another worker "
                "may have sent them too",
                len(batch) - held,
                len(batch),
            )
        if not send_log.isEnabledFor(logging.INFO):
            return  # no send-log file: skip formatting a line per recipient
        for row in rows:
            send_log.info(
                "message %s to %s: %s %s",
                row["message_pk"],
                row["recipient"],
                row["outcome"],
                format_reply(row["code"], row["enhanced_status"], row["server_text"]),
                extra={"attempt": row},
            )


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


def _nothing() -> None:
    """A call for the database thread that only marks its place in the order."""


_CHECK_DATABASE = "Check that the database (DATABASE_URL) is reachable and writable"


class _DaemonThread(Executor):
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
