"""The statements that fill a campaign's ledger (``mailroom_campaign_recipients``) and move
its rows: the fan-out of an audience into it, and the batches that take pending rows.

The ledger is the one record of who a campaign has reached: a row per campaign and address,
``pending`` until its message is in the outbox, then ``queued`` with that message's id, from
which ``sent``, ``failed`` and ``suppressed`` are read
(:func:`~mailroom.outbox.ledger_state_queries.recipient_counts`). A row moves from ``pending``
only in a transaction that checks it still is (:func:`take_pending`), so two workers, a re-run
batch or a retried Celery task can never queue a second message for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    bindparam,
    cast,
    func,
    literal,
    select,
    update,
)
from sqlalchemy import String as SqlString

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import campaign_recipients as ledger
from mailroom.outbox.schema import contacts
from mailroom.outbox.vocabulary import RecipientStatus

__all__ = [
    "LedgerEntry",
    "PendingRecipient",
    "fan_out_list_page",
    "insert_ledger_entries",
    "list_contact",
    "mark_queued",
    "mark_settled",
    "pending_recipients",
    "settle_pending",
    "take_pending",
]


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
    message_id: str | None = None
    """The Message-ID its last message had, when that was taken back after an attempt."""


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
        # Stored normalised by the list's writers; lower() again, so two spellings of one
        # mailbox can never make two ledger rows.
        func.lower(contacts.c.address),
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
    connection: Connection,
    campaign_id: int,
    entries: Iterable[LedgerEntry],
    now: float,
    *,
    status: RecipientStatus = RecipientStatus.PENDING,
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
            "status": status.value,
            "reason": "invalid address" if status is RecipientStatus.SKIPPED else None,
            "updated_at": now,
        }
        for entry in entries
    ]
    if rows:
        statement = dialect_insert(connection, ledger).on_conflict_do_nothing(
            index_elements=["campaign_id", "address"]
        )
        connection.execute(statement, rows)


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


def pending_recipients(
    connection: Connection, campaign_id: int, limit: int, *, after_id: int = 0
) -> list[PendingRecipient]:
    """The first ``limit`` pending rows of the campaign (after ``after_id``), in ledger
    order. Read without a lock: :func:`take_pending` is what decides who a batch gets."""
    query = (
        select(
            ledger.c.id,
            ledger.c.address,
            ledger.c.contact_key,
            ledger.c.name,
            ledger.c.attributes,
            ledger.c.message_id,
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
        PendingRecipient(
            row.id,
            row.address,
            row.contact_key,
            row.name,
            _json(row.attributes),
            row.message_id,
        )
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


def _json(value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):  # a driver that hands JSON back as text
        decoded = json.loads(value)
        return decoded if isinstance(decoded, dict) else None
    return value if isinstance(value, dict) else None
