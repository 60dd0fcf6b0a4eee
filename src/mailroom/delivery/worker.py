"""The worker: claims due messages under a lease, sends them over reused connections, and
writes the outcomes back in batches.

Three kinds of task share one event loop:

- the *claimer* leases batches of due messages (most urgent first) into a bounded local
  queue, and waits when the queue is full, so a worker never hoards more than it can send;
- *senders*, ``concurrency`` of them, each with its own transport (one SMTP connection kept
  open), take messages from the queue and send them;
- the *recorder* writes outcomes and send-log rows in one transaction per batch.

Database work runs in threads, so it never stops the loop from sending. A message is marked
``sent`` only after the relay's 250; if the worker dies in between, the lease expires and the
message is sent again (at-least-once). It keeps its Message-ID, so a duplicate can be told.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.delivery.retry import GiveUp, PauseStream, RetryAt, RetryPolicy
from mailroom.delivery.throttle import Throttle
from mailroom.errors import DeliveryError, TransientError, Verdict, split_enhanced_status
from mailroom.message import Envelope
from mailroom.outbox import queries
from mailroom.outbox.database import check_schema, create_outbox_engine
from mailroom.outbox.queries import ClaimedMessage, Completion
from mailroom.outbox.schema import AttemptOutcome, Status
from mailroom.transports import Transport, transport_from_settings
from mailroom.transports.base import SendResult

__all__ = ["Worker", "WorkerStats", "retry_policy_from_settings"]

logger = logging.getLogger(__name__)
send_log = logging.getLogger("mailroom.sendlog")
"""One record per attempt and recipient, with the fields in ``extra``; see mailroom.logs."""

_RECORD_EVERY = 0.05  # seconds: how long outcomes may wait to be written in one batch


def retry_policy_from_settings(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.EMAIL_MAX_ATTEMPTS,
        max_age=timedelta(seconds=settings.EMAIL_MAX_AGE),
        base_delay=timedelta(seconds=settings.EMAIL_RETRY_DELAY),
    )


@dataclass
class WorkerStats:
    """What one run of a worker did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    paused: int = 0
    released: int = 0
    possible_duplicates: int = 0


@dataclass
class _Outcome:
    """One attempt's result, waiting for the recorder."""

    message: ClaimedMessage
    completion: Completion
    attempt_rows: list[dict[str, Any]] = field(default_factory=list)
    pause: PauseStream | None = None
    followup: tuple[list[str], float] | None = None
    """Recipients refused for now while others were accepted, and when to try them again."""


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
        self.engine = engine or create_outbox_engine(settings.DATABASE_URL, durable=False)
        self._transport_factory = transport_factory or (lambda: transport_from_settings(settings))
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        self.batch_size = batch_size or settings.WORKER_BATCH_SIZE
        self.once = once
        self.name = name or f"{socket.gethostname()}:{secrets.token_hex(3)}"
        self.policy = retry_policy or retry_policy_from_settings(settings)
        self.throttle = Throttle(self.engine, settings)
        # Time a send may take before its lease runs out: never start one with less left.
        self._lease_margin = min(2 * settings.EMAIL_TIMEOUT, settings.WORKER_LEASE_SECONDS / 2)
        if self.throttle.active:
            # Hold no more than can be sent soon: a throttled worker must not hoard leases.
            self.batch_size = min(self.batch_size, self.concurrency)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.lease_token = secrets.token_hex(16)
        self.stats = WorkerStats()
        self._queue: asyncio.Queue[ClaimedMessage | None] = asyncio.Queue()
        self._outcomes: list[_Outcome] = []
        self._outcome_ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finished = False
        self._pending = 0  # claimed and not yet recorded
        self._paused_here: dict[str, float] = {}  # stream -> until, as this worker knows it

    def stop(self) -> None:
        """Stop claiming; finish what is being sent, give the rest back, and return."""
        if not self._stopping.is_set():
            logger.info("worker %s stopping", self.name)
        self._stopping.set()

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> WorkerStats:
        await asyncio.to_thread(check_schema, self.engine)
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
            for result in await asyncio.gather(*senders, return_exceptions=True):
                if isinstance(result, BaseException):
                    logger.error("a sender ended with an error", exc_info=result)
            self._finished = True
            self._outcome_ready.set()
            await recorder
            if self._owns_engine:
                self.engine.dispose()
        return self.stats

    def _now(self) -> float:
        return time.time()

    async def _claimer(self) -> None:
        last_sweep = 0.0
        while not self._stopping.is_set():
            now = self._now()
            if now - last_sweep > min(5.0, self.settings.WORKER_LEASE_SECONDS / 4):
                for message_pk, message_id in await asyncio.to_thread(self._sweep, now):
                    logger.warning(
                        "re-queued message %s %s: its worker's lease expired; if that worker "
                        "sent it before dying, this will be a duplicate",
                        message_pk,
                        message_id,
                        extra={"message_pk": message_pk, "message_id": message_id},
                    )
                last_sweep = now
            room = self.batch_size * 2 - self._queue.qsize()
            if room >= self.batch_size:
                claimed = await asyncio.to_thread(self._claim, self.batch_size)
                self._pending += len(claimed)
                for message in claimed:
                    self._queue.put_nowait(message)
                if claimed:
                    continue
                # Nothing due. In --once mode we are done when nothing is left unrecorded:
                # recorded outcomes cannot make more work due "now" except a stream pause
                # ending, which --once does not wait for.
                if self.once and self._pending == 0:
                    return
            await self._sleep(self.settings.WORKER_POLL_INTERVAL)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _sweep(self, now: float) -> list[tuple[int, str]]:
        with self.engine.begin() as connection:
            return queries.recover_expired_leases(connection, now)

    def _claim(self, limit: int) -> list[ClaimedMessage]:
        now = self._now()
        with self.engine.begin() as connection:
            return queries.claim_due(
                connection,
                now=now,
                limit=limit,
                lease_token=self.lease_token,
                lease_until=now + self.settings.WORKER_LEASE_SECONDS,
            )

    async def _sender(self) -> None:
        transport = self._transport_factory()
        try:
            while (message := await self._queue.get()) is not None:
                try:
                    await self._handle(transport, message)
                except Exception:
                    # Never lose a message to a bug or a database hiccup here: it was not
                    # sent (delivery errors are handled inside), so it goes back to the queue.
                    logger.exception("sender failed on message %s; re-queueing it", message.id)
                    self._add_outcome(self._released(message))
        finally:
            await transport.close()

    async def _handle(self, transport: Transport, message: ClaimedMessage) -> None:
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
        outcome = await self._deliver(transport, message)
        self._add_outcome(outcome)
        try:
            await self.throttle.release()
        except Exception:  # the outcome is safe; a missed burst count only shortens a pause
            logger.exception("could not record the end of a throttled send")

    def _add_outcome(self, outcome: _Outcome) -> None:
        self._outcomes.append(outcome)
        if len(self._outcomes) >= self.batch_size:
            self._outcome_ready.set()

    # -- one message ---------------------------------------------------------------------

    async def _deliver(self, transport: Transport, message: ClaimedMessage) -> _Outcome:
        envelope = Envelope(
            sender=message.sender,
            recipients=message.recipients,
            data=message.data,
            message_id=message.message_id,
            smtputf8=message.smtputf8,
        )
        started = time.perf_counter()
        try:
            result = await transport.send(envelope)
        except DeliveryError as error:
            return self._failed(transport, message, error, time.perf_counter() - started)
        except Exception as error:  # a bug, not the relay: keep the message, log the traceback
            logger.exception("unexpected error sending message %s", message.id)
            wrapped = TransientError(f"unexpected error: {type(error).__name__}: {error}")
            return self._failed(transport, message, wrapped, time.perf_counter() - started)
        return self._sent(transport, message, result, time.perf_counter() - started)

    def _attempt_row(
        self,
        transport: Transport,
        message: ClaimedMessage,
        recipient: str,
        outcome: AttemptOutcome,
        duration: float,
        *,
        code: int | None = None,
        enhanced_status: str | None = None,
        server_text: str | None = None,
        possible_duplicate: bool = False,
    ) -> dict[str, Any]:
        return {
            "message_pk": message.id,
            "attempt": message.attempts + 1,
            "at": self._now(),
            "duration_ms": round(duration * 1000, 3),
            "recipient": recipient,
            "transport": transport.name,
            "outcome": outcome.value,
            "code": code,
            "enhanced_status": enhanced_status,
            "server_text": server_text,
            "possible_duplicate": possible_duplicate,
            "worker": self.name,
        }

    def _sent(
        self, transport: Transport, message: ClaimedMessage, result: SendResult, duration: float
    ) -> _Outcome:
        code, _, text = result.reply.partition(" ")
        enhanced, text = split_enhanced_status(text)
        rows = [
            self._attempt_row(
                transport,
                message,
                recipient,
                AttemptOutcome.SENT,
                duration,
                code=int(code) if code.isdigit() else None,
                enhanced_status=enhanced,
                server_text=text or None,
            )
            for recipient in result.accepted
        ]
        rows += [
            self._attempt_row(
                transport,
                message,
                recipient,
                AttemptOutcome.REFUSED,
                duration,
                code=error.code,
                enhanced_status=error.enhanced_status,
                server_text=error.server_text or str(error),
            )
            for recipient, error in result.refused.items()
        ]
        now = self._now()
        self.stats.sent += 1
        return _Outcome(
            message,
            Completion(id=message.id, status=Status.SENT, due_at=now, sent_at=now),
            rows,
            followup=self._followup(message, result, now),
        )

    def _followup(
        self, message: ClaimedMessage, result: SendResult, now: float
    ) -> tuple[list[str], float] | None:
        """A 4xx for some recipients must not silently drop them: they get a message of their
        own (same bytes, same Message-ID), due after the usual backoff, while attempts last."""
        later = [r for r, e in result.refused.items() if e.verdict is Verdict.TRANSIENT]
        attempts = message.attempts + 1
        if not later or attempts >= self.policy.max_attempts:
            return None
        return later, now + self.policy.backoff(attempts, self._rng).total_seconds()

    def _failed(
        self, transport: Transport, message: ClaimedMessage, error: DeliveryError, duration: float
    ) -> _Outcome:
        now = self._now()
        decision = self.policy.decide(
            error,
            attempts=message.attempts + 1,
            created_at=datetime.fromtimestamp(message.created_at, UTC),
            now=datetime.fromtimestamp(now, UTC),
            consecutive_pauses=0,
            rng=self._rng,
        )
        recipients = list(error.refused) or list(message.recipients)

        def rows(outcome: AttemptOutcome, possible_duplicate: bool = False) -> list[dict[str, Any]]:
            out = []
            for recipient in recipients:
                own = error.refused.get(recipient, error)
                out.append(
                    self._attempt_row(
                        transport,
                        message,
                        recipient,
                        outcome,
                        duration,
                        code=own.code,
                        enhanced_status=own.enhanced_status,
                        server_text=own.server_text or str(own),
                        possible_duplicate=possible_duplicate,
                    )
                )
            return out

        if isinstance(decision, PauseStream):
            until = decision.until.timestamp()
            self._paused_here[message.stream] = until
            self.stats.paused += 1
            logger.error("pausing stream %s: %s", message.stream, decision.reason)
            return _Outcome(
                message,
                Completion(
                    id=message.id,
                    status=Status.QUEUED,
                    due_at=now,
                    attempts_used=0,
                    error=decision.reason,
                    code=error.code,
                    enhanced_status=error.enhanced_status,
                ),
                rows(AttemptOutcome.PAUSED),
                pause=decision,
            )
        if isinstance(decision, RetryAt):
            if decision.possible_duplicate:
                self.stats.possible_duplicates += 1
                logger.warning(
                    "message %s (%s): no reply after the final dot; it may have been delivered "
                    "and will be sent again",
                    message.id,
                    message.message_id,
                )
            self.stats.deferred += 1
            return _Outcome(
                message,
                Completion(
                    id=message.id,
                    status=Status.DEFERRED,
                    due_at=decision.at.timestamp(),
                    error=decision.reason,
                    code=error.code,
                    enhanced_status=error.enhanced_status,
                ),
                rows(AttemptOutcome.DEFERRED, decision.possible_duplicate),
            )
        assert isinstance(decision, GiveUp)  # noqa: S101 - the three decisions are exhaustive
        self.stats.failed += 1
        return _Outcome(
            message,
            Completion(
                id=message.id,
                status=Status.FAILED,
                due_at=now,
                error=decision.reason,
                code=error.code,
                enhanced_status=error.enhanced_status,
            ),
            # Silence after the final dot: the relay may have delivered it after all.
            rows(AttemptOutcome.FAILED, error.possibly_delivered),
        )

    def _released(self, message: ClaimedMessage) -> _Outcome:
        """Back to the queue, no attempt used (shutting down, or its stream is paused)."""
        self.stats.released += 1
        return _Outcome(
            message,
            Completion(id=message.id, status=Status.QUEUED, due_at=self._now(), attempts_used=0),
        )

    def _release_queued(self) -> None:
        while not self._queue.empty():
            message = self._queue.get_nowait()
            if message is not None:
                self._outcomes.append(self._released(message))

    # -- writing outcomes ----------------------------------------------------------------

    async def _recorder(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outcome_ready.wait(), timeout=_RECORD_EVERY)
            self._outcome_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                await asyncio.to_thread(self._record, batch)
                self._pending -= len(batch)
            if self._finished and not self._outcomes:
                return

    def _record(self, batch: list[_Outcome]) -> None:
        now = self._now()
        rows = [row for outcome in batch for row in outcome.attempt_rows]
        with self.engine.begin() as connection:
            # One pause per stream per batch, however many of its messages hit the problem.
            pauses = {o.message.stream: o.pause for o in batch if o.pause is not None}
            for stream, pause in pauses.items():
                streak = queries.consecutive_pauses(connection, stream)
                until = now + self.policy.pause(streak, self._rng).total_seconds()
                queries.pause_stream(connection, stream, until=until, reason=pause.reason)
            held = queries.complete(
                connection, [o.completion for o in batch], self.lease_token, now
            )
            queries.record_attempts(connection, rows)
            for outcome in batch:
                if outcome.followup is not None:
                    recipients, due_at = outcome.followup
                    queries.insert_followup(
                        connection, outcome.message.id, recipients, due_at=due_at, now=now
                    )
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
        for row in rows:
            send_log.info(
                "message %s to %s: %s %s",
                row["message_pk"],
                row["recipient"],
                row["outcome"],
                " ".join(
                    str(p) for p in (row["code"], row["enhanced_status"], row["server_text"]) if p
                ),
                extra={"attempt": row},
            )
