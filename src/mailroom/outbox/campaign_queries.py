"""Every SQL statement on campaigns and their ledger (``mailroom_campaigns``,
``mailroom_campaign_recipients``), named for what it does.

The ledger is the one record of who a campaign has reached: a row per campaign and address,
``pending`` until its message is in the outbox, then ``queued`` with that message's id, from
which ``sent``, ``failed`` and ``suppressed`` are read (:func:`recipient_counts`). A row moves
from ``pending`` only in a transaction that checks it still is (:func:`take_pending`), so two
workers, a re-run batch or a retried Celery task can never queue a second message for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import String as SqlString

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import campaign_recipients as ledger
from mailroom.outbox.schema import campaigns, contacts, events, messages
from mailroom.outbox.vocabulary import CampaignStatus, EventType, RecipientStatus, Status

__all__ = [
    "IN_FLIGHT",
    "EventTally",
    "LedgerEntry",
    "PendingRecipient",
    "campaign_row",
    "campaigns_to_run",
    "delete_campaign",
    "event_tallies",
    "fan_out_list_page",
    "has_in_flight",
    "has_pending",
    "in_flight_on_stream",
    "insert_campaign",
    "insert_ledger_entries",
    "list_campaigns",
    "list_contact",
    "lock_campaign",
    "mark_invalid",
    "mark_queued",
    "mark_settled",
    "pending_recipients",
    "recent_outcomes",
    "recipient_counts",
    "recipients_by_type",
    "retry_failed",
    "sends_over_time",
    "settle_pending",
    "take_pending",
    "update_campaign",
    "withdraw_waiting",
]

IN_FLIGHT = (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.SENDING)
"""A message's statuses while its outcome is still to come."""
_WITHDRAWABLE = (Status.QUEUED.value, Status.SCHEDULED.value, Status.DEFERRED.value)
"""Waiting in the outbox and claimed by no worker: what a pause or cancel can take back."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recipient as an audience yields them, on their way into the ledger."""

    key: str
    """The audience's key for them (a contact's id; the app's user id)."""
    address: str
    """Normalised: the lower-case addr-spec."""
    name: str | None
    attributes: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class PendingRecipient:
    """A ledger row waiting for its message."""

    id: int
    address: str
    contact_key: str
    name: str | None
    attributes: Mapping[str, Any] | None


# -- campaigns -------------------------------------------------------------------------------


def insert_campaign(connection: Connection, values: Mapping[str, Any]) -> int:
    result = connection.execute(insert(campaigns).values(**values).returning(campaigns.c.id))
    return int(result.scalar_one())


def campaign_row(connection: Connection, campaign_id: int) -> Row[Any] | None:
    return connection.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()


def lock_campaign(connection: Connection, campaign_id: int) -> Row[Any] | None:
    """The campaign's row, locked until the transaction ends (PostgreSQL ``FOR UPDATE``; on
    SQLite the transaction's write lock already keeps every other writer out)."""
    query = select(campaigns).where(campaigns.c.id == campaign_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return connection.execute(query).first()


def update_campaign(
    connection: Connection,
    campaign_id: int,
    values: Mapping[str, Any],
    *,
    only_if: Sequence[CampaignStatus] | None = None,
) -> bool:
    """Whether the campaign was changed (``only_if``: only while in one of these statuses)."""
    statement = update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
    if only_if is not None:
        statement = statement.where(campaigns.c.status.in_([s.value for s in only_if]))
    return connection.execute(statement).rowcount == 1


def delete_campaign(connection: Connection, campaign_id: int) -> None:
    connection.execute(delete(campaigns).where(campaigns.c.id == campaign_id))


def list_campaigns(connection: Connection, *, limit: int = 100) -> list[Row[Any]]:
    query = select(campaigns).order_by(campaigns.c.id.desc()).limit(limit)
    return list(connection.execute(query))


def campaigns_to_run(connection: Connection, now: float) -> list[Row[Any]]:
    """Campaigns sending, and scheduled ones whose time has come, oldest first."""
    query = (
        select(campaigns.c.id, campaigns.c.status, campaigns.c.stream)
        .where(
            (campaigns.c.status == CampaignStatus.SENDING.value)
            | (
                (campaigns.c.status == CampaignStatus.SCHEDULED.value)
                & (campaigns.c.send_at <= now)
            )
        )
        .order_by(campaigns.c.id)
    )
    return list(connection.execute(query))


# -- the fan-out: the audience into the ledger -------------------------------------------------


def fan_out_list_page(
    connection: Connection,
    campaign_id: int,
    list_id: int,
    *,
    after_id: int,
    limit: int,
    now: float,
) -> tuple[int, int | None]:
    """The next ``limit`` contacts of a mailing list after ``after_id`` into the ledger as
    ``pending``, in the database (no row comes through Python); the number of contacts in
    the page and the last one's id (``None``: the list has no more). A contact already in the
    ledger (a page done again after a crash) is left as it is."""
    page = (
        select(contacts.c.id)
        .where(contacts.c.list_id == list_id, contacts.c.id > after_id)
        .order_by(contacts.c.id)
        .limit(limit)
        .subquery()
    )
    found = connection.execute(select(func.count(), func.max(page.c.id))).one()
    count, last = int(found[0]), found[1]
    if not count:
        return 0, None
    chosen = select(
        literal(campaign_id, Integer),
        contacts.c.address,
        cast(contacts.c.id, SqlString),
        contacts.c.name,
        contacts.c.attributes,
        literal(RecipientStatus.PENDING.value, SqlString),
        literal(now),
    ).where(contacts.c.list_id == list_id, contacts.c.id > after_id, contacts.c.id <= last)
    statement = (
        dialect_insert(connection, ledger)
        .from_select(
            [
                "campaign_id",
                "address",
                "contact_key",
                "name",
                "attributes",
                "status",
                "updated_at",
            ],
            chosen,
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "address"])
    )
    connection.execute(statement)
    return count, int(last)


def insert_ledger_entries(
    connection: Connection, campaign_id: int, entries: Iterable[LedgerEntry], now: float
) -> None:
    """Recipients an application's audience yielded, into the ledger as ``pending``; an
    address already there (named twice, or a page done again) is left as it is."""
    rows = [
        {
            "campaign_id": campaign_id,
            "address": entry.address,
            "contact_key": entry.key,
            "name": entry.name,
            "attributes": dict(entry.attributes) if entry.attributes is not None else None,
            "status": RecipientStatus.PENDING.value,
            "updated_at": now,
        }
        for entry in entries
    ]
    if rows:
        statement = dialect_insert(connection, ledger).on_conflict_do_nothing(
            index_elements=["campaign_id", "address"]
        )
        connection.execute(statement, rows)


def mark_invalid(
    connection: Connection, campaign_id: int, addresses: Sequence[str], now: float
) -> None:
    """Ledger rows of addresses no message can go to: ``skipped``, with the reason."""
    connection.execute(
        update(ledger)
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.address.in_(addresses),
            ledger.c.status == RecipientStatus.PENDING.value,
        )
        .values(status=RecipientStatus.SKIPPED.value, reason="invalid address", updated_at=now)
    )


def list_contact(
    connection: Connection, list_id: int, address: str | None
) -> PendingRecipient | None:
    """A contact of the list as a recipient (``address``: that one; ``None``: the first), for
    a preview or a test send in their name."""
    query = select(contacts).where(contacts.c.list_id == list_id)
    if address is not None:
        query = query.where(contacts.c.address == address)
    row = connection.execute(query.order_by(contacts.c.id).limit(1)).first()
    if row is None:
        return None
    return PendingRecipient(0, row.address, str(row.id), row.name, _json(row.attributes))


# -- batches: pending rows into the outbox -----------------------------------------------------


def pending_recipients(
    connection: Connection, campaign_id: int, limit: int, *, after_id: int = 0
) -> list[PendingRecipient]:
    """The first ``limit`` pending rows of the campaign (after ``after_id``), in ledger
    order. Read without a lock: :func:`take_pending` is what decides who a batch gets."""
    query = (
        select(
            ledger.c.id, ledger.c.address, ledger.c.contact_key, ledger.c.name, ledger.c.attributes
        )
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.PENDING.value,
            ledger.c.id > after_id,
        )
        .order_by(ledger.c.id)
        .limit(limit)
    )
    return [
        PendingRecipient(row.id, row.address, row.contact_key, row.name, _json(row.attributes))
        for row in connection.execute(query)
    ]


def take_pending(connection: Connection, ids: Sequence[int]) -> set[int]:
    """Of ``ids``, the rows still ``pending``, locked for this transaction (PostgreSQL ``FOR
    UPDATE``, which re-reads a row another transaction changed meanwhile; on SQLite the write
    lock holds everyone else off). Only these may get a message in this transaction."""
    if not ids:
        return set()
    query = select(ledger.c.id).where(
        ledger.c.id.in_(ids), ledger.c.status == RecipientStatus.PENDING.value
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return {int(row_id) for row_id in connection.execute(query).scalars()}


def mark_queued(connection: Connection, queued: Sequence[tuple[int, int]], now: float) -> None:
    """``(ledger id, message id)`` pairs: those recipients' messages are in the outbox."""
    if not queued:
        return
    statement = (
        update(ledger)
        .where(ledger.c.id == bindparam("ledger_id"))
        .values(
            status=RecipientStatus.QUEUED.value,
            message_pk=bindparam("message"),
            reason=None,
            updated_at=now,
        )
    )
    connection.execute(
        statement, [{"ledger_id": row_id, "message": message} for row_id, message in queued]
    )


def mark_settled(
    connection: Connection,
    settled: Sequence[tuple[int, RecipientStatus, str | None]],
    now: float,
) -> None:
    """``(ledger id, status, reason)``: recipients who get no message (suppressed, skipped)."""
    if not settled:
        return
    statement = (
        update(ledger)
        .where(ledger.c.id == bindparam("ledger_id"))
        .values(status=bindparam("new_status"), reason=bindparam("why"), updated_at=now)
    )
    connection.execute(
        statement,
        [
            {"ledger_id": row_id, "new_status": status.value, "why": reason}
            for row_id, status, reason in settled
        ],
    )


def settle_pending(
    connection: Connection, campaign_id: int, status: RecipientStatus, reason: str, now: float
) -> int:
    """Every pending row of the campaign to ``status`` (a cancel: ``skipped``)."""
    statement = (
        update(ledger)
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.PENDING.value,
        )
        .values(status=status.value, reason=reason, updated_at=now)
    )
    return int(connection.execute(statement).rowcount)


def in_flight_on_stream(
    connection: Connection, stream: str, cap: int, statuses: Sequence[Status] = IN_FLIGHT
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
            select(ledger.c.id, ledger.c.message_pk)
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
    rows = [row.id for row in waiting if int(row.message_pk) in gone]
    if rows:
        statement = (
            update(ledger)
            .where(ledger.c.id == bindparam("ledger_id"))
            .values(status=to.value, reason=reason, message_pk=None, updated_at=now)
        )
        connection.execute(statement, [{"ledger_id": row_id} for row_id in rows])
    return len(rows)


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


def recent_outcomes(connection: Connection, campaign_id: int, sample: int) -> tuple[int, int]:
    """(sent, failed) among the campaign's last ``sample`` messages to have either outcome,
    newest ledger rows first: the error rate of now, not of the whole campaign."""
    recent = (
        select(messages.c.status)
        .select_from(ledger.join(messages, messages.c.id == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.QUEUED.value,
            messages.c.status.in_([Status.SENT.value, Status.FAILED.value]),
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


# -- progress ----------------------------------------------------------------------------------


def recipient_counts(connection: Connection, campaign_id: int) -> dict[RecipientStatus, int]:
    """How many recipients of the campaign are in each :class:`RecipientStatus`, read from
    the ledger and, for queued ones, their messages: nothing kept beside them to drift."""
    effective = case(
        (ledger.c.status != RecipientStatus.QUEUED.value, ledger.c.status),
        (messages.c.status == Status.SENT.value, RecipientStatus.SENT.value),
        (messages.c.status == Status.FAILED.value, RecipientStatus.FAILED.value),
        (messages.c.status == Status.SUPPRESSED.value, RecipientStatus.SUPPRESSED.value),
        # Cancelled by an operator in the message log (a pause or cancel of the campaign
        # moves the ledger row itself), or purged: no message will come.
        (messages.c.status == Status.CANCELLED.value, RecipientStatus.SKIPPED.value),
        (messages.c.id.is_(None), RecipientStatus.SKIPPED.value),
        else_=RecipientStatus.QUEUED.value,
    ).label("effective")
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


def _json(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a driver that hands JSON back as text
        decoded = json.loads(value)
        return decoded if isinstance(decoded, dict) else None
    return value if isinstance(value, dict) else None


# -- results: what the recipients did ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventTally:
    """One kind of event of a campaign's messages: how many, and from how many recipients."""

    type: str
    label: str | None
    link_index: int | None
    total: int
    unique: int


def event_tallies(connection: Connection, campaign_id: int) -> list[EventTally]:
    """Every event type (with its hit label and link) of the campaign's messages, counted in
    all and per recipient: opens, clicks per link, unsubscribes, bounces, complaints."""
    query = (
        select(
            events.c.type,
            events.c.label,
            events.c.link_index,
            func.count(),
            func.count(func.distinct(events.c.message_pk)),
        )
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.not_in([EventType.QUEUED.value]),
        )
        .group_by(events.c.type, events.c.label, events.c.link_index)
    )
    return [
        EventTally(kind, label, link, int(total), int(unique))
        for kind, label, link, total, unique in connection.execute(query)
    ]


def recipients_by_type(
    connection: Connection, campaign_id: int, labels: Iterable[str | None]
) -> dict[str, int]:
    """For each event type, how many of the campaign's recipients have one under any of
    ``labels`` (``None``: unlabelled), each counted once however many hits, labels and links:
    who clicked at all, where :func:`event_tallies` counts who clicked each link."""
    wanted = set(labels)
    named = [label for label in wanted if label is not None]
    label_matches: ColumnElement[bool] = events.c.label.in_(named)
    if None in wanted:
        label_matches = or_(label_matches, events.c.label.is_(None))
    query = (
        select(events.c.type, func.count(func.distinct(events.c.message_pk)))
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.not_in([EventType.QUEUED.value]),
            label_matches,
        )
        .group_by(events.c.type)
    )
    return {kind: int(count) for kind, count in connection.execute(query)}


def sends_over_time(
    connection: Connection, campaign_id: int, bucket_seconds: float
) -> list[tuple[float, str, int]]:
    """``(bucket start, event type, count)`` of the campaign's sent, failed, opened and clicked
    events, in buckets of ``bucket_seconds``, oldest first: the campaign page's chart."""
    if connection.dialect.name == "postgresql":
        # PostgreSQL's cast to integer rounds to the nearest (half the events would land in
        # the bucket after theirs); floor() is what is meant.
        index: Any = func.floor(events.c.at / bucket_seconds)
    else:
        # SQLite's cast truncates, the floor for times after 1970; its floor() is not in
        # every build.
        index = cast(events.c.at / bucket_seconds, Integer)
    bucket = (index * bucket_seconds).label("bucket")
    query = (
        select(bucket, events.c.type, func.count())
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.in_(
                [
                    EventType.SENT.value,
                    EventType.FAILED.value,
                    EventType.OPENED.value,
                    EventType.CLICKED.value,
                ]
            ),
        )
        .group_by(bucket, events.c.type)
        .order_by(bucket)
    )
    return [(float(start), kind, int(count)) for start, kind, count in connection.execute(query)]
