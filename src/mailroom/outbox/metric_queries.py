"""What ``/metrics`` reports, read from the outbox at scrape time.

Nothing is counted in memory (DESIGN: counters are derived, not kept): every figure is an
aggregate over the tables, so each process reports the same numbers, a restart loses none, and
a message sent by a separate ``mailroom worker`` is counted too. Each figure is one grouped
query; the latency histogram is one pass over the attempts that counts every bucket at once.
No address and no message content is read: only statuses, stream names, outcomes, event
types and durations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, select

from mailroom.outbox.schema import attempts, events, messages
from mailroom.outbox.vocabulary import Status

__all__ = [
    "DurationHistogram",
    "attempt_durations",
    "attempt_outcomes",
    "event_counts",
    "oldest_due_age",
    "queue_depth",
]

_WAITING = (Status.QUEUED.value, Status.DEFERRED.value)


def queue_depth(connection: Connection) -> dict[tuple[str, str], int]:
    """Messages per (status, stream)."""
    rows = connection.execute(
        select(messages.c.status, messages.c.stream, func.count()).group_by(
            messages.c.status, messages.c.stream
        )
    )
    return {(row[0], row[1]): int(row[2]) for row in rows}


def oldest_due_age(connection: Connection, now: float) -> float:
    """Seconds the longest-waiting due message has waited (0 when none is due)."""
    oldest = connection.execute(
        select(func.min(messages.c.due_at)).where(
            messages.c.status.in_(_WAITING), messages.c.due_at <= now
        )
    ).scalar()
    return 0.0 if oldest is None else max(0.0, now - float(oldest))


def attempt_outcomes(connection: Connection) -> dict[str, int]:
    """Delivery attempts (one per message and recipient) per outcome, ever recorded."""
    rows = connection.execute(select(attempts.c.outcome, func.count()).group_by(attempts.c.outcome))
    return {row[0]: int(row[1]) for row in rows}


def event_counts(connection: Connection) -> dict[str, int]:
    """Events per type, ever recorded."""
    rows = connection.execute(select(events.c.type, func.count()).group_by(events.c.type))
    return {row[0]: int(row[1]) for row in rows}


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """Attempt durations in seconds: ``cumulative[i]`` attempts took at most ``bounds[i]``."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float


def attempt_durations(connection: Connection, bounds: Sequence[float]) -> DurationHistogram:
    """Every attempt's duration, bucketed by ``bounds`` (seconds, ascending) in one query."""
    columns = [
        func.coalesce(func.sum(case((attempts.c.duration_ms <= bound * 1000.0, 1), else_=0)), 0)
        for bound in bounds
    ]
    row = connection.execute(
        select(func.count(), func.coalesce(func.sum(attempts.c.duration_ms), 0.0), *columns)
    ).one()
    return DurationHistogram(
        bounds=tuple(bounds),
        cumulative=tuple(int(value) for value in row[2:]),
        count=int(row[0]),
        total=float(row[1]) / 1000.0,
    )
