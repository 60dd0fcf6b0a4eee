"""The event log (``mailroom_events``): what happened to each message and recipient.

Writers hand over whole batches, written with one ``executemany`` in the caller's transaction:
the worker in the transaction that records its attempts, the tracking endpoints from a buffer
flushed every so often, so no event costs a commit of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

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
    """Insert ``records`` in the caller's transaction, in one statement (per 500 on
    PostgreSQL); returns how many."""
    # Driver-level, with plain tuples, as the attempts are written: it runs on the worker's
    # and the enqueue's hot paths, where building SQLAlchemy's per-row parameter dicts cost
    # more than the inserts.
    rows = [
        (
            record.message_pk,
            record.recipient,
            str(record.type),
            record.at,
            None if record.label is None else str(record.label),
            record.link_index,
            None if record.detail is None else json.dumps(dict(record.detail)),
        )
        for record in records
    ]
    if not rows:
        return 0
    if connection.dialect.paramstyle == "qmark":  # SQLite: one prepared statement, reused
        connection.exec_driver_sql(_INSERT, rows)
        return len(rows)
    # PostgreSQL: multi-row VALUES, as the messages are inserted; an executemany there runs
    # one statement per row and cost a third more than the messages' own insert.
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        sql = f"{_INSERT_HEAD} VALUES {', '.join([_VALUES_FORMAT] * len(chunk))}"
        connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row))
    return len(rows)


_COLUMNS = ("message_pk", "recipient", "type", "at", "label", "link_index", "detail")
_INSERT = (
    f"INSERT INTO {events.name} ({', '.join(_COLUMNS)}) "  # noqa: S608 - our own names
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_INSERT_HEAD = f"INSERT INTO {events.name} ({', '.join(_COLUMNS)})"
_VALUES_FORMAT = "(" + ", ".join("%s" for _ in _COLUMNS) + ")"
_ROWS_PER_INSERT = 500  # 3,500 parameters: well within PostgreSQL's 65,535


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
