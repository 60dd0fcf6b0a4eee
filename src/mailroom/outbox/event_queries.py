"""The event log (``mailroom_events``): what happened to each message and recipient.

Writers hand over whole batches, written with one ``executemany`` in the caller's transaction:
the worker in the transaction that records its attempts, the tracking endpoints from a buffer
flushed every so often, so no event costs a commit of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from mailroom.outbox.schema import EventType, HitLabel, events

__all__ = ["EventRecord", "events_of", "record_events"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event to record, or one read back."""

    message_pk: int | None
    recipient: str
    type: EventType
    at: float
    label: HitLabel | None = None
    link_index: int | None = None
    detail: Mapping[str, Any] | None = None


def record_events(connection: Connection, records: Iterable[EventRecord]) -> int:
    """Insert ``records`` in the caller's transaction; returns how many."""
    rows = [
        {
            "message_pk": record.message_pk,
            "recipient": record.recipient,
            "type": str(record.type),
            "at": record.at,
            "label": None if record.label is None else str(record.label),
            "link_index": record.link_index,
            "detail": None if record.detail is None else dict(record.detail),
        }
        for record in records
    ]
    if rows:
        connection.execute(insert(events), rows)
    return len(rows)


def events_of(connection: Connection, message_pk: int) -> Sequence[EventRecord]:
    """Every event of one message, oldest first."""
    result = connection.execute(
        select(
            events.c.message_pk,
            events.c.recipient,
            events.c.type,
            events.c.at,
            events.c.label,
            events.c.link_index,
            events.c.detail,
        )
        .where(events.c.message_pk == message_pk)
        .order_by(events.c.at, events.c.id)
    )
    return [
        EventRecord(
            message_pk=row.message_pk,
            recipient=row.recipient,
            type=EventType(row.type),
            at=row.at,
            label=None if row.label is None else HitLabel(row.label),
            link_index=row.link_index,
            detail=row.detail,
        )
        for row in result
    ]
