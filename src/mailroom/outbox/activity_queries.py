"""What the outbox has been doing lately, read from the event log: outcomes per hour, the send
rate now, the newest errors. The statements behind the status page's chart and tables.

Every statement here reads ``mailroom_events`` through its ``(type, at)`` index: a range of
``at`` for one type at a time, so the cost follows the events of the window asked for, not the
size of the log (on SQLite the hourly count never leaves the index). As in
:mod:`mailroom.outbox.queries`, each function takes an open connection inside a transaction
the caller owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Integer, cast, func, select

from mailroom.outbox.schema import events
from mailroom.outbox.vocabulary import EventType
from mailroom.transports.smtp_replies import format_reply

__all__ = [
    "CHARTED",
    "ERRORS",
    "HOUR",
    "ErrorRow",
    "HourCounts",
    "errors_newest_first",
    "outcomes_per_hour",
    "sent_messages_since",
]

CHARTED = (EventType.SENT, EventType.DEFERRED, EventType.FAILED)
"""The outcomes counted per hour: what became of each recipient's attempt."""
ERRORS = (EventType.DEFERRED, EventType.FAILED)
"""The outcomes shown as errors: the relay (or the connection to it) said no."""

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class HourCounts:
    """One hour of the chart: recipients sent, deferred and failed in ``[start, start+1h)``."""

    start: float
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.deferred + self.failed


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One recipient's attempt that did not deliver, with what the relay said."""

    at: float
    message_pk: int | None
    recipient: str
    outcome: EventType
    reply: str
    """The relay's reply as one line (``451 4.7.1 greylisted``), or the error we met."""


def _hour_index(at: ColumnElement[Any], start: float, connection: Connection) -> ColumnElement[Any]:
    """Which hour after ``start`` the time ``at`` falls in (0 for the first)."""
    offset = (at - start) / HOUR
    if connection.dialect.name == "postgresql":
        # PostgreSQL rounds a double cast to an integer; floor() is what is meant.
        return cast(func.floor(offset), Integer)
    # SQLite truncates the cast towards zero, which is floor() for the offsets >= 0 asked for
    # (its floor() exists only when built with the math functions).
    return cast(offset, Integer)


def outcomes_per_hour(connection: Connection, *, start: float, hours: int) -> list[HourCounts]:
    """``hours`` consecutive hours from ``start``, oldest first, each with its outcomes
    counted (hours with none are zeros). Counted in the database, grouped by hour and type."""
    end = start + hours * HOUR
    in_window = (
        select(
            _hour_index(events.c.at, start, connection).label("hour"),
            events.c.type.label("type"),
        )
        .where(
            events.c.type.in_([kind.value for kind in CHARTED]),
            events.c.at >= start,
            events.c.at < end,
        )
        .subquery()
    )
    # Grouped outside, by the named column: PostgreSQL would not take the expression in
    # GROUP BY as the one in the select list, its bound parameters being numbered apart.
    rows = connection.execute(
        select(in_window.c.hour, in_window.c.type, func.count()).group_by(
            in_window.c.hour, in_window.c.type
        )
    )
    counts: list[dict[str, int]] = [{} for _ in range(hours)]
    for hour, kind, count in rows:
        if 0 <= int(hour) < hours:  # a float's rounding at the very end of the window
            counts[int(hour)][kind] = int(count)
    return [
        HourCounts(
            start=start + index * HOUR,
            sent=found.get(EventType.SENT.value, 0),
            deferred=found.get(EventType.DEFERRED.value, 0),
            failed=found.get(EventType.FAILED.value, 0),
        )
        for index, found in enumerate(counts)
    ]


def sent_messages_since(connection: Connection, since: float) -> int:
    """Messages with a recipient sent at or after ``since`` (for the send rate now).

    Counted from the ``sent`` events (indexed by time) rather than the messages' ``sent_at``,
    which no index covers: a rate must stay cheap to read on a large outbox.
    """
    found = connection.execute(
        select(func.count(events.c.message_pk.distinct())).where(
            events.c.type == EventType.SENT.value, events.c.at >= since
        )
    ).scalar()
    return int(found or 0)


def errors_newest_first(connection: Connection, *, limit: int) -> list[ErrorRow]:
    """The newest ``limit`` deferred or failed recipients, newest first.

    One statement per outcome, each walking its part of the ``(type, at)`` index backwards and
    stopping at ``limit``; merged here. (One statement over both types would have to read every
    error ever recorded to sort them.)
    """
    found: list[ErrorRow] = []
    for kind in ERRORS:
        rows = connection.execute(
            select(events.c.at, events.c.message_pk, events.c.recipient, events.c.detail)
            .where(events.c.type == kind.value)
            .order_by(events.c.at.desc())
            .limit(limit)
        )
        found.extend(_error_row(kind, row) for row in rows)
    found.sort(key=lambda row: row.at, reverse=True)
    return found[:limit]


def _error_row(kind: EventType, row: Any) -> ErrorRow:
    detail = row.detail or {}
    reply = format_reply(detail.get("code"), detail.get("enhanced_status"), _text(detail))
    return ErrorRow(
        at=row.at,
        message_pk=row.message_pk,
        recipient=row.recipient,
        outcome=kind,
        reply=reply or "no reply recorded",
    )


def _text(detail: dict[str, Any]) -> str | None:
    text = detail.get("server_text")
    return None if text is None else str(text)
