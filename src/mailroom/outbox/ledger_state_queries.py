"""The statements that read where a campaign's recipients are, through the ledger and their
messages (the queue-ahead window, what is pending or in flight, recent failures, the counts),
and those that take its waiting messages back (pause, cancel) or queue the failed again."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from mailroom.outbox.schema import campaign_recipients as ledger
from mailroom.outbox.schema import campaigns, messages
from mailroom.outbox.vocabulary import CampaignStatus, RecipientStatus, Status

__all__ = [
    "IN_FLIGHT",
    "count_pending",
    "effective_status",
    "has_in_flight",
    "has_pending",
    "in_flight_on_stream",
    "recent_outcomes",
    "recipient_counts",
    "retry_failed",
    "settle_before_purge",
    "stopped_with_queued",
    "withdraw_waiting",
]


IN_FLIGHT = (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.SENDING)
"""A message's statuses while its outcome is still to come."""


_WITHDRAWABLE = (Status.QUEUED.value, Status.SCHEDULED.value, Status.DEFERRED.value)
"""Waiting in the outbox and claimed by no worker: what a pause or cancel can take back."""


_WINDOW = (Status.QUEUED, Status.DEFERRED, Status.SENDING)
"""What fills a stream's queue-ahead window: not mail scheduled for later (a digest due next
week must not hold a campaign up today)."""


def in_flight_on_stream(
    connection: Connection, stream: str, cap: int, statuses: Sequence[Status] = _WINDOW
) -> int:
    """Messages of ``stream`` waiting or being sent (in one of ``statuses``), counted up to
    ``cap`` (the queue-ahead window: past it the count stops, so it costs at most ``cap``
    index entries)."""
    waiting = (
        select(literal(1))
        .select_from(messages)
        .where(messages.c.status.in_([s.value for s in statuses]), messages.c.stream == stream)
        .limit(cap)
        .subquery()
    )
    return int(connection.execute(select(func.count()).select_from(waiting)).scalar_one())


def withdraw_waiting(
    connection: Connection,
    campaign_id: int,
    *,
    to: RecipientStatus,
    reason: str | None,
    now: float,
) -> int:
    """The campaign's messages still waiting in the outbox (claimed by no worker) taken out
    of it, and their ledger rows back to ``pending`` (a pause: resuming queues them again) or
    to ``skipped`` (a cancel). A message a worker holds is left to finish. Returns how many
    were taken back. Run in the transaction that changes the campaign's status, after
    :func:`lock_campaign`.

    The messages are deleted, not cancelled: a cancelled message can be retried from the
    message log, and one taken back at a pause gets a new message at the resume; both would
    reach the recipient. Their ``queued`` events, and the attempts of one that was deferred,
    go with them."""
    waiting = list(
        connection.execute(
            select(ledger.c.id, ledger.c.message_pk, messages.c.message_id, messages.c.attempts)
            .join(messages, messages.c.id == ledger.c.message_pk)
            .where(
                ledger.c.campaign_id == campaign_id,
                ledger.c.status == RecipientStatus.QUEUED.value,
                messages.c.status.in_(_WITHDRAWABLE),
            )
        )
    )
    if not waiting:
        return 0
    taken: list[int] = []
    message_ids = [int(row.message_pk) for row in waiting]
    for start in range(0, len(message_ids), 500):
        chunk = message_ids[start : start + 500]
        # The status guard again, in the statement: a row a worker claimed since the select
        # is not matched, and its ledger row stays queued for its outcome.
        deleted = connection.execute(
            delete(messages)
            .where(messages.c.id.in_(chunk), messages.c.status.in_(_WITHDRAWABLE))
            .returning(messages.c.id)
        )
        taken.extend(int(message_id) for message_id in deleted.scalars())
    gone = set(taken)
    rows = [row for row in waiting if int(row.message_pk) in gone]
    if rows:
        statement = (
            update(ledger)
            .where(ledger.c.id == bindparam("ledger_id"))
            .values(
                status=to.value,
                reason=reason,
                message_pk=None,
                message_id=bindparam("kept_id"),
                updated_at=now,
            )
        )
        # A message tried before (deferred) may have reached the recipient (a 250 lost on
        # the way back): the one composed at the resume keeps its Message-ID, so a receiver
        # can still tell the repeat.
        connection.execute(
            statement,
            [
                {"ledger_id": row.id, "kept_id": row.message_id if row.attempts else None}
                for row in rows
            ],
        )
    return len(rows)


def settle_before_purge(connection: Connection, doomed: Select[tuple[int]]) -> None:
    """Before the messages ``doomed`` selects are purged: their campaign recipients' ledger
    rows take the outcome their message had (sent, failed, suppressed; else skipped), so a
    campaign's results outlive its messages."""
    outcome = (
        select(
            case(
                (messages.c.status == Status.SENT.value, RecipientStatus.SENT.value),
                (messages.c.status == Status.FAILED.value, RecipientStatus.FAILED.value),
                (
                    messages.c.status == Status.SUPPRESSED.value,
                    RecipientStatus.SUPPRESSED.value,
                ),
                else_=RecipientStatus.SKIPPED.value,
            )
        )
        .where(messages.c.id == ledger.c.message_pk)
        .scalar_subquery()
    )
    connection.execute(
        update(ledger)
        .where(
            ledger.c.message_pk.in_(doomed.scalar_subquery()),
            ledger.c.status == RecipientStatus.QUEUED.value,
        )
        .values(status=outcome)
    )


def stopped_with_queued(connection: Connection) -> list[tuple[int, str]]:
    """``(id, status)`` of the paused and cancelled campaigns that still have queued ledger
    rows: a message a worker held when they stopped may come back to wait (deferred, or its
    lease expired), and is taken back too."""
    stopped = select(campaigns.c.id).where(
        campaigns.c.status.in_([CampaignStatus.PAUSED.value, CampaignStatus.CANCELLED.value])
    )
    query = (
        select(campaigns.c.id, campaigns.c.status)
        .where(
            campaigns.c.id.in_(stopped.scalar_subquery()),
            select(ledger.c.id)
            .where(
                ledger.c.campaign_id == campaigns.c.id,
                ledger.c.status == RecipientStatus.QUEUED.value,
            )
            .exists(),
        )
        .order_by(campaigns.c.id)
    )
    return [(int(row.id), str(row.status)) for row in connection.execute(query)]


def retry_failed(connection: Connection, campaign_id: int, now: float) -> int:
    """The campaign's failed messages queued again, due now with their attempts counted
    afresh and their Message-ID kept (a receiver can still tell a repeat), as the message
    log's retry does; how many."""
    failed = (
        select(ledger.c.message_pk)
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.QUEUED.value,
            ledger.c.message_pk.is_not(None),
        )
        .scalar_subquery()
    )
    statement = (
        update(messages)
        .where(messages.c.id.in_(failed), messages.c.status == Status.FAILED.value)
        .values(
            status=Status.QUEUED.value,
            attempts=0,
            due_at=now,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    return int(connection.execute(statement).rowcount)


def has_pending(connection: Connection, campaign_id: int) -> bool:
    query = select(ledger.c.id).where(
        ledger.c.campaign_id == campaign_id, ledger.c.status == RecipientStatus.PENDING.value
    )
    return connection.execute(query.limit(1)).first() is not None


def count_pending(connection: Connection, campaign_id: int, cap: int) -> int:
    """The campaign's pending rows, counted up to ``cap``."""
    page = (
        select(ledger.c.id)
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.PENDING.value,
        )
        .limit(cap)
        .subquery()
    )
    return int(connection.execute(select(func.count()).select_from(page)).scalar_one())


def has_in_flight(
    connection: Connection, campaign_id: int, statuses: Sequence[Status] = IN_FLIGHT
) -> bool:
    """Whether a queued recipient's message is still waiting or being sent (in one of
    ``statuses``)."""
    query = (
        select(ledger.c.id)
        .join(messages, messages.c.id == ledger.c.message_pk)
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.QUEUED.value,
            messages.c.status.in_([s.value for s in statuses]),
        )
        .limit(1)
    )
    return connection.execute(query).first() is not None


def recent_outcomes(
    connection: Connection, campaign_id: int, sample: int, *, since: float = 0.0
) -> tuple[int, int]:
    """(sent, failed) among the campaign's last ``sample`` messages to have either outcome
    (at ``since`` or later: after its last resume), newest ledger rows first: the error rate
    of now, not of the whole campaign."""
    recent = (
        select(messages.c.status)
        .select_from(ledger.join(messages, messages.c.id == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.QUEUED.value,
            messages.c.status.in_([Status.SENT.value, Status.FAILED.value]),
            messages.c.updated_at >= since,
        )
        .order_by(ledger.c.id.desc())
        .limit(sample)
        .subquery()
    )
    counts: dict[str, int] = {
        status: int(count)
        for status, count in connection.execute(
            select(recent.c.status, func.count()).group_by(recent.c.status)
        )
    }
    return int(counts.get(Status.SENT.value, 0)), int(counts.get(Status.FAILED.value, 0))


def recipient_counts(connection: Connection, campaign_id: int) -> dict[RecipientStatus, int]:
    """How many recipients of the campaign are in each :class:`RecipientStatus`, read from
    the ledger and, for queued ones, their messages: nothing kept beside them to drift."""
    effective = effective_status().label("effective")
    query = (
        select(effective, func.count())
        .select_from(ledger.outerjoin(messages, messages.c.id == ledger.c.message_pk))
        .where(ledger.c.campaign_id == campaign_id)
        .group_by(effective)
    )
    counts = dict.fromkeys(RecipientStatus, 0)
    for status, count in connection.execute(query):
        counts[RecipientStatus(status)] += int(count)
    return counts


def effective_status() -> ColumnElement[Any]:
    """A ledger row's :class:`RecipientStatus` as its message tells it, over the ledger
    outer-joined to the messages (``message_pk``): queued rows take their message's outcome."""
    return case(
        (ledger.c.status != RecipientStatus.QUEUED.value, ledger.c.status),
        (messages.c.status == Status.SENT.value, RecipientStatus.SENT.value),
        (messages.c.status == Status.FAILED.value, RecipientStatus.FAILED.value),
        (messages.c.status == Status.SUPPRESSED.value, RecipientStatus.SUPPRESSED.value),
        # Cancelled by an operator in the message log (a pause or cancel of the campaign
        # moves the ledger row itself), or purged: no message will come.
        (messages.c.status == Status.CANCELLED.value, RecipientStatus.SKIPPED.value),
        (messages.c.id.is_(None), RecipientStatus.SKIPPED.value),
        else_=RecipientStatus.QUEUED.value,
    )
