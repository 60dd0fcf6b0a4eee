"""Every query on a message's lease: claim due messages under one, and put back those whose
lease expired; plus :class:`ClaimedMessage`, what a claim hands a worker.

The statements a worker runs before it sends. Writing the outcome (which also ends the lease)
is :func:`mailroom.outbox.queries.complete`. As in :mod:`mailroom.outbox.queries`, each
function takes an open connection inside a transaction the caller owns.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, func, select, update

from mailroom.message import Envelope
from mailroom.outbox.query_plans import explain
from mailroom.outbox.schema import messages, streams
from mailroom.outbox.vocabulary import CLAIMABLE, TEST_STREAM, ConsentFacts, Status

__all__ = ["ClaimedMessage", "claim_due", "claim_plan", "lease", "recover_expired_leases"]

logger = logging.getLogger(__name__)

_TEST_EMAIL_ABANDONED = (
    "the test email's sender stopped before recording what happened; a test email is tried "
    "only once (send another to check the relay)"
)
_LOWEST_PRIORITY = -32768
"""The smallest value a ``priority`` column (a SmallInteger) can hold."""


class ClaimedMessage(NamedTuple):
    """A message a worker holds under a lease: everything needed to send it.

    A NamedTuple rather than a frozen dataclass: a worker makes thousands a second, and a
    tuple is built in one step where a frozen dataclass sets each field through a call.
    """

    id: int
    message_id: str
    stream: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    smtputf8: bool
    attempts: int
    created_at: float
    lease_expires_at: float
    consent: ConsentFacts | None
    """What the check at claim needs (scopes, required mail); ``None`` for a plain send."""

    def envelope(self) -> Envelope:
        """What the transport is handed: the stored bytes and their envelope."""
        return Envelope(
            sender=self.sender,
            recipients=self.recipients,
            data=self.data,
            message_id=self.message_id,
            smtputf8=self.smtputf8,
        )


def claim_due(
    connection: Connection,
    *,
    now: float,
    limit: int,
    lease_token: str,
    lease_until: float,
    max_bytes: int | None = None,
) -> list[ClaimedMessage]:
    """Lease up to ``limit`` due messages, most urgent first (priority, then due time), and,
    with ``max_bytes``, no more message bytes than that — but always at least one message, so
    one larger than the budget is still sent.

    Two statements: ``SELECT id, length(data) ... FOR UPDATE SKIP LOCKED`` (on PostgreSQL
    concurrent workers skip each other's rows instead of waiting; ``length`` reads only the
    stored size, not the bytes), then ``UPDATE ... WHERE id IN (...) RETURNING`` the rows that
    fit, with everything a worker needs to check and send them (their consent facts too, so
    nothing reads the rows again). On SQLite both run inside the single writer's transaction
    (``BEGIN IMMEDIATE``).
    """
    due = _due(now, limit)
    chosen: list[int] = []
    total = 0
    for row in connection.execute(due):
        if max_bytes is not None and chosen and total + (row.size or 0) > max_bytes:
            break
        chosen.append(row.id)
        total += row.size or 0
    if not chosen:
        return []
    claimed = list(
        connection.execute(
            update(messages)
            .where(messages.c.id.in_(chosen))
            .values(
                status=Status.SENDING.value,
                lease_token=lease_token,
                lease_expires_at=lease_until,
                updated_at=now,
            )
            .returning(
                messages.c.id,
                messages.c.message_id,
                messages.c.stream,
                messages.c.priority,
                messages.c.due_at,
                messages.c.sender,
                messages.c.recipients,
                messages.c.data,
                messages.c.smtputf8,
                messages.c.attempts,
                messages.c.created_at,
                messages.c.consent_scopes,
                messages.c.consent_required,
            )
        )
    )
    # RETURNING does not keep the subquery's order; restore it.
    claimed.sort(key=lambda row: (row.priority, row.due_at, row.id))
    return [
        ClaimedMessage(
            row.id,
            row.message_id,
            row.stream,
            row.sender,
            tuple(row.recipients),
            row.data,
            row.smtputf8,
            row.attempts,
            row.created_at,
            lease_until,
            _consent(row.id, row.consent_scopes, row.consent_required),
        )
        for row in claimed
    ]


def _due(now: float, limit: int) -> Select[tuple[int, int]]:
    """The ids and sizes of the next ``limit`` due messages, most urgent first."""
    paused = select(streams.c.name).where(streams.c.paused_until > now)
    return (
        select(messages.c.id, func.length(messages.c.data).label("size"))
        .where(
            messages.c.status.in_([s.value for s in CLAIMABLE]),
            # Always true (the whole SmallInteger range), and there for SQLite's planner: with
            # a constraint on the second column of (status, priority, due_at) it takes that
            # index over (status, created_at, id), the message search's. Only the claim index
            # hands each status's rows over in priority order, so SQLite stops reading once
            # it holds ``limit`` of them; with the other it reads and sorts every due row on
            # each claim, which made a backlog's claims quadratic.
            messages.c.priority >= _LOWEST_PRIORITY,
            messages.c.due_at <= now,
            messages.c.stream.not_in(paused.scalar_subquery()),
        )
        .order_by(messages.c.priority, messages.c.due_at, messages.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def claim_plan(connection: Connection, *, now: float, limit: int = 100) -> list[str]:
    """How the database will find the messages a claim takes (see :func:`explain`)."""
    return explain(connection, _due(now, limit))


def _consent(pk: int, scopes: Any, required: Any) -> ConsentFacts | None:
    """The consent facts stored with a message; None (a plain send: ``all``, as required
    mail) when there are none, or when the stored value cannot be read as scopes: one bad row
    must not fail every claim of a batch it is in, so it is sent as a message enqueued without
    consent facts would be, with a warning."""
    if scopes is None:
        return None
    try:
        if not isinstance(scopes, list):
            raise ValueError(f"consent_scopes is not a list: {scopes!r}")
        return ConsentFacts(tuple(scopes), bool(required))
    except ValueError as exc:
        logger.warning("message %s: unreadable consent facts, checked as a plain send: %s", pk, exc)
        return None


def lease(
    connection: Connection, message_pk: int, *, lease_token: str, until: float, now: float
) -> None:
    """Lease one message, just inserted, to the caller (who sends it at once)."""
    connection.execute(
        update(messages)
        .where(messages.c.id == message_pk)
        .values(
            status=Status.SENDING.value,
            lease_token=lease_token,
            lease_expires_at=until,
            updated_at=now,
        )
    )


def recover_expired_leases(connection: Connection, now: float) -> list[tuple[int, str]]:
    """Put messages whose worker died (lease expired) back in the queue.

    Returns (id, Message-ID) of each: the dead worker may have sent some of them after the
    relay's 250 and before recording it, so each is a possible duplicate.

    A test email (stream ``test``) is not put back but failed: it is tried once, by the
    command that sent it, whose person saw the result; sending it again later, perhaps twice,
    would only confuse.
    """
    connection.execute(
        update(messages)
        .where(
            messages.c.status == Status.SENDING.value,
            messages.c.lease_expires_at < now,
            messages.c.stream == TEST_STREAM,
        )
        .values(
            status=Status.FAILED.value,
            last_error=_TEST_EMAIL_ABANDONED,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    result = connection.execute(
        update(messages)
        .where(messages.c.status == Status.SENDING.value, messages.c.lease_expires_at < now)
        .values(status=Status.QUEUED.value, lease_token=None, lease_expires_at=None, updated_at=now)
        .returning(messages.c.id, messages.c.message_id)
    )
    return [(row.id, row.message_id) for row in result]
