"""Writing a worker's outcomes back: one transaction per batch, and bounded last writes.

The recorder writes outcomes, send-log rows and their events (``sent``, ``deferred``,
``failed``, ``suppressed``, one per message and recipient) in one transaction per batch. A
message is marked ``sent`` only after the relay's 250; if the worker dies before it is
written, the lease expires and the message is sent again (at-least-once).

Once every sender has ended, the last outcomes get ``RECORD_AFTER_END`` seconds: a database
that refuses them or does not answer must not keep the worker from ending. Whatever is not
written keeps its lease and is sent again when the lease runs out (nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from mailroom.delivery.database_thread import Abandoned, DatabaseThread
from mailroom.delivery.outcomes import Outcome
from mailroom.delivery.retry import RetryPolicy
from mailroom.outbox import queries, stream_queries
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.vocabulary import AttemptOutcome, EventType, Status
from mailroom.transports.smtp_replies import format_reply

__all__ = ["RECORD_AFTER_END", "Recorder", "attempt_events", "log_attempts", "write_outcomes"]

# The worker's log, whichever of its modules writes the record.
logger = logging.getLogger("mailroom.delivery.worker")
send_log = logging.getLogger("mailroom.sendlog")
"""One record per attempt and recipient, with the fields in ``extra``; see mailroom.logs."""

_RECORD_EVERY = 0.05  # seconds: how long outcomes may wait to be written in one batch
_RECORD_RETRY = 1.0  # seconds before writing outcomes again after the database failed
# Once every sender has ended, how long the recorder keeps trying to write the last outcomes
# to a database that refuses them, or waits for one that does not answer: a worker must end
# in bounded time even with its database gone.
RECORD_AFTER_END = 10.0

# The event each attempt outcome is for its recipient. A refusal while others were accepted
# is final for that recipient (one refused for now is carried to a follow-up: ``deferred``).
# A paused stream or an interrupted send is no outcome for the recipient, who is simply tried
# again (the attempt row keeps what happened): no event.
_EVENT_OF: Mapping[str, EventType] = {
    AttemptOutcome.SENT: EventType.SENT,
    AttemptOutcome.DEFERRED: EventType.DEFERRED,
    AttemptOutcome.FAILED: EventType.FAILED,
    AttemptOutcome.REFUSED: EventType.FAILED,
    AttemptOutcome.SUPPRESSED: EventType.SUPPRESSED,
}
_DETAIL = ("attempt", "transport", "code", "enhanced_status", "server_text")


def attempt_events(rows: Sequence[Mapping[str, Any]]) -> list[EventRecord]:
    """The events of a batch's attempt rows, with what the relay said as their detail."""
    found = []
    for row in rows:
        kind = _EVENT_OF.get(row["outcome"])
        if kind is None:
            continue
        detail = {name: row[name] for name in _DETAIL if row[name] is not None}
        if row["possible_duplicate"]:
            detail["possible_duplicate"] = True
        found.append(
            EventRecord(row["message_pk"], row["recipient"], kind, row["at"], detail=detail)
        )
    return found


class Recorder:
    """The outcomes a worker has yet to write, and the task that writes them."""

    def __init__(
        self,
        engine: Engine,
        db: DatabaseThread,
        *,
        policy: RetryPolicy,
        rng: random.Random,
        lease_token: str,
        batch_size: int,
        abort_now: asyncio.Event,
        now: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.lease_token = lease_token
        self.batch_size = batch_size
        self._db = db
        self._rng = rng
        self._abort_now = abort_now
        self._now = now
        self.outcomes: list[Outcome] = []  # added and not yet written
        self.pending = 0  # claimed and not yet recorded
        self.failing = False  # the latest write of outcomes failed
        self._ready = asyncio.Event()
        self._finished = False
        self._give_up = asyncio.Event()  # stop waiting for the database (see last_writes)

    def add(self, outcome: Outcome) -> None:
        # The recorder needs the message's id and stream, never its bytes: drop them now
        # rather than hold every body until the batch of outcomes is written.
        outcome.message = outcome.message._replace(data=b"")
        self.outcomes.append(outcome)
        if len(self.outcomes) >= self.batch_size:
            self._ready.set()

    def last_writes(self) -> asyncio.TimerHandle:
        """From now on the database gets a bounded time to take the last outcomes: after it,
        :attr:`give_up` is set (cancel the handle returned to end that)."""
        return asyncio.get_running_loop().call_later(RECORD_AFTER_END, self._give_up.set)

    @property
    def give_up(self) -> asyncio.Event:
        """Set when the bounded time for the last outcomes is over."""
        return self._give_up

    def finish(self) -> None:
        """Nothing more will be added: write what is left, then end :meth:`run`."""
        self._finished = True
        self._ready.set()

    async def run(self) -> int:
        """Write outcomes in batches until the run has finished and all are written; return
        how many could not be written before giving up (0 but for a database gone at the end).
        """
        give_up_at: float | None = None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout=_RECORD_EVERY)
            self._ready.clear()
            batch, self.outcomes = self.outcomes, []
            if batch:
                try:
                    await self._db.call(self.record, batch, until=self._give_up)
                except Abandoned:
                    # The database has not answered for the bounded time after the end:
                    # these outcomes may or may not be written; the messages keep their lease.
                    return len(batch) + len(self.outcomes)
                except Exception:
                    # The database is away or refused the write: keep every outcome and try
                    # again; the claimer stops taking more while these wait (see Worker).
                    logger.exception("could not record %d outcomes; retrying", len(batch))
                    self.outcomes[:0] = batch
                    self.failing = True
                    if self._finished:
                        # Nothing more will be sent; keep trying for a bounded time only. The
                        # unrecorded messages keep their lease and are not lost.
                        now = asyncio.get_running_loop().time()
                        if give_up_at is None:
                            give_up_at = now + RECORD_AFTER_END
                        if now >= give_up_at or self._abort_now.is_set():
                            return len(self.outcomes)
                    await asyncio.sleep(_RECORD_RETRY)
                    continue
                self.pending -= len(batch)
                self.failing = False
            if self._finished and not self.outcomes:
                return 0

    def record(self, batch: list[Outcome]) -> None:
        now = self._now()
        with self.engine.begin() as connection:
            held, rows = write_outcomes(
                connection,
                batch,
                lease_token=self.lease_token,
                now=now,
                pause_until=lambda streak: (
                    now + self.policy.pause(streak, self._rng).total_seconds()
                ),
            )
        if held < len(batch):
            logger.warning(
                "%d of %d outcomes were for messages whose lease had expired; another worker "
                "may have sent them too",
                len(batch) - held,
                len(batch),
            )
        log_attempts(rows)


def write_outcomes(
    connection: Connection,
    batch: Sequence[Outcome],
    *,
    lease_token: str,
    now: float,
    pause_until: Callable[[int], float],
) -> tuple[int, list[dict[str, Any]]]:
    """Write a batch of outcomes in the caller's transaction: pauses, follow-ups, the
    messages' new states, their attempt rows and events. Returns how many messages still held
    ``lease_token``, and the attempt rows written. ``pause_until`` gives, from the number of
    pauses in a row a stream has had, when its next pause ends."""
    rows = [row for outcome in batch for row in outcome.attempt_rows]
    # One pause per stream per batch, however many of its messages hit the problem.
    pauses = {o.message.stream: o.pause for o in batch if o.pause is not None}
    for stream, pause in pauses.items():
        streak = stream_queries.consecutive_pauses(connection, stream)
        stream_queries.pause_stream(
            connection, stream, until=pause_until(streak), reason=pause.reason
        )
    # Follow-ups first: one may keep its source's last error, which completing the source
    # (sent) clears.
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
    held = queries.complete(connection, [o.completion for o in batch], lease_token, now)
    queries.record_attempts(connection, rows)
    record_events(connection, attempt_events(rows))
    healthy = {o.message.stream for o in batch if o.completion.status is Status.SENT}
    for stream in healthy - pauses.keys():
        stream_queries.resume_stream(connection, stream)
    return held, rows


def log_attempts(rows: Sequence[Mapping[str, Any]]) -> None:
    """A send-log record per attempt row (see :mod:`mailroom.logs`)."""
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
