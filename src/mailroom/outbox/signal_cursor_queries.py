"""Readers of the event log that hand each event on once, whichever of their processes reads
(``mailroom_signal_cursors``): a named cursor, moved in the transaction that reads the events
it passes. Two readers take turns on its row (PostgreSQL's ``FOR UPDATE``, SQLite's
``BEGIN IMMEDIATE``), so no event is claimed twice; a reader that starts later begins where
the last one stopped, so no event is skipped while none ran.

What a claim returns is handed on after its commit: a process that dies in between loses
those events' hand-on (at most once, never twice).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from sqlalchemy import Connection, func, select, update

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import events, signal_cursors

__all__ = ["ClaimedEvent", "claim_events", "start_cursor"]


class ClaimedEvent(NamedTuple):
    id: int
    message_pk: int | None
    recipient: str
    type: str
    at: float
    detail: Any


def start_cursor(connection: Connection, name: str) -> None:
    """Make the cursor ``name`` if there is none, at the newest event: a first reader hands
    on what happens from now, not the whole history."""
    newest = connection.scalar(select(func.max(events.c.id))) or 0
    statement = (
        dialect_insert(connection, signal_cursors)
        .values(name=name, last_event_id=newest, updated_at=time.time())
        .on_conflict_do_nothing(index_elements=[signal_cursors.c.name])
    )
    connection.execute(statement)


def claim_events(connection: Connection, name: str, limit: int) -> list[ClaimedEvent]:
    """The next ``limit`` events after the cursor ``name`` (which must exist), the cursor
    moved past them — in the caller's transaction, which must commit before they are handed
    on."""
    last = connection.execute(
        select(signal_cursors.c.last_event_id)
        .where(signal_cursors.c.name == name)
        .with_for_update()
    ).scalar_one()
    rows = connection.execute(
        select(
            events.c.id,
            events.c.message_pk,
            events.c.recipient,
            events.c.type,
            events.c.at,
            events.c.detail,
        )
        .where(events.c.id > last)
        .order_by(events.c.id)
        .limit(limit)
    ).all()
    if rows:
        connection.execute(
            update(signal_cursors)
            .where(signal_cursors.c.name == name)
            .values(last_event_id=rows[-1].id, updated_at=time.time())
        )
    return [ClaimedEvent(*row) for row in rows]
