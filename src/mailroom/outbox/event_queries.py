"""The event log (``mailroom_events``): what happened to each message and recipient.

Writers hand over whole batches, written with one ``executemany`` in the caller's transaction:
the worker in the transaction that records its attempts, the tracking endpoints from a buffer
flushed every so often, so no event costs a commit of its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from mailroom.outbox.schema import events
from mailroom.outbox.vocabulary import EventType, HitLabel

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
    """Insert ``records`` in the caller's transaction (multi-row inserts on SQLite, a COPY on
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
    if connection.dialect.paramstyle == "qmark":
        # SQLite: a few multi-row statements. An executemany steps once per row, and each
        # step lets go of the GIL and must win it back from the request threads, up to a
        # switch interval apiece, while this thread holds the database's one write lock.
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            values = tuple(value for row in chunk for value in row)
            connection.exec_driver_sql(f"{_INSERT_HEAD} {', '.join([_ROW] * len(chunk))}", values)
        return len(rows)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with contextlib.closing(cursor):
        if hasattr(cursor, "copy"):
            # psycopg: COPY, in the same transaction. An executemany runs a statement per row
            # (a multi-row VALUES was slower still) and cost a third of the enqueue; COPY, on
            # the same connection, a tenth of it.
            with cursor.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
            return len(rows)
    connection.exec_driver_sql(_INSERT_FORMAT, rows)
    return len(rows)


_COLUMNS = ("message_pk", "recipient", "type", "at", "label", "link_index", "detail")
_ROW = f"({', '.join('?' for _ in _COLUMNS)})"
_INSERT_HEAD = f"INSERT INTO {events.name} ({', '.join(_COLUMNS)}) VALUES"
_INSERT_FORMAT = f"{_INSERT_HEAD} {_ROW}".replace("?", "%s")
_ROWS_PER_INSERT = 1000  # 7,000 parameters: within SQLite's limit (32,766 since 3.32)
_COPY = f"COPY {events.name} ({', '.join(_COLUMNS)}) FROM STDIN"


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
