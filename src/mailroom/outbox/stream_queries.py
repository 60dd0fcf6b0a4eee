"""Every query on the outbox's shared pacing state: streams (pauses) and throttle windows.

A stream's row exists once it has been paused (our configuration was wrong); a throttle
window's row holds the sends granted in one window or burst, counted across all workers. As in
:mod:`mailroom.outbox.queries`, each function takes an open connection inside a transaction
the caller owns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, or_, select, update

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import messages, streams, throttle_windows
from mailroom.outbox.vocabulary import CLAIMABLE

__all__ = [
    "consecutive_pauses",
    "lift_pause",
    "lock_throttle_windows",
    "pause_stream",
    "paused_until",
    "resume_stream",
    "stream_names",
    "streams_state",
    "update_throttle_window",
    "waiting_by_stream",
]


def pause_stream(connection: Connection, name: str, *, until: float, reason: str) -> None:
    """Pause a stream (our configuration is wrong); count consecutive pauses for backoff.

    ``reason`` is one line saying what went wrong, optionally followed by lines of advice
    (what to change); :func:`mailroom.outbox.operations.list_streams` splits them again.
    """
    statement = dialect_insert(connection, streams).values(
        name=name, paused_until=until, pause_reason=reason, consecutive_pauses=1
    )
    statement = statement.on_conflict_do_update(
        index_elements=["name"],
        set_={
            "paused_until": until,
            "pause_reason": reason,
            "consecutive_pauses": streams.c.consecutive_pauses + 1,
        },
    )
    connection.execute(statement)


def resume_stream(connection: Connection, name: str) -> None:
    """A send went through: the stream is healthy again."""
    connection.execute(
        update(streams)
        .where(
            streams.c.name == name,
            or_(streams.c.consecutive_pauses > 0, streams.c.paused_until.is_not(None)),
        )
        .values(paused_until=None, pause_reason=None, consecutive_pauses=0)
    )


def consecutive_pauses(connection: Connection, name: str) -> int:
    found = connection.execute(
        select(streams.c.consecutive_pauses).where(streams.c.name == name)
    ).scalar()
    return int(found or 0)


def paused_until(connection: Connection, name: str, now: float) -> float | None:
    """When the stream's pause ends, if it is paused at ``now``."""
    found = connection.execute(
        select(streams.c.paused_until).where(streams.c.name == name, streams.c.paused_until > now)
    ).scalar_one_or_none()
    return float(found) if found is not None else None


def stream_names(connection: Connection) -> set[str]:
    """Every stream the database knows: those with messages, and those ever paused."""
    with_messages = select(messages.c.stream).distinct()
    with_state = select(streams.c.name)
    return {row[0] for row in connection.execute(with_messages.union(with_state))}


def streams_state(connection: Connection) -> list[dict[str, Any]]:
    """Every stream with a row of state (a pause, now or before), by name."""
    rows = connection.execute(
        select(
            streams.c.name,
            streams.c.paused_until,
            streams.c.pause_reason,
            streams.c.consecutive_pauses,
        ).order_by(streams.c.name)
    )
    return [dict(row._mapping) for row in rows]


def waiting_by_stream(connection: Connection) -> dict[str, int]:
    """How many messages each stream has waiting to be sent (queued, scheduled, deferred)."""
    rows = connection.execute(
        select(messages.c.stream, func.count())
        .where(messages.c.status.in_([s.value for s in CLAIMABLE]))
        .group_by(messages.c.stream)
    )
    return {row[0]: int(row[1]) for row in rows}


def lift_pause(connection: Connection, name: str, now: float) -> bool:
    """End a stream's pause now (an operator fixed the setting); ``False`` if it had none.

    The count of consecutive pauses starts again too: the fix is presumed to work, so a
    new pause would be a new problem and starts at the shortest pause.
    """
    result = connection.execute(
        update(streams)
        .where(streams.c.name == name, streams.c.paused_until > now)
        .values(paused_until=None, pause_reason=None, consecutive_pauses=0)
    )
    return bool(result.rowcount)


# -- throttle windows ------------------------------------------------------------------


def lock_throttle_windows(
    connection: Connection, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Lock the named windows' rows for the transaction (``SELECT ... FOR UPDATE`` on
    PostgreSQL; SQLite's single writer already excludes everyone else), creating any that are
    missing; name → the row's values.

    The rows are created here, in the transaction that then locks them, not once per
    process: another sender's insert may not be committed yet, and a row it promised
    would be invisible to us. ``ON CONFLICT DO NOTHING`` waits for such an insert.
    """
    locked = select(throttle_windows).where(throttle_windows.c.name.in_(names)).with_for_update()
    rows = {row.name: dict(row._mapping) for row in connection.execute(locked)}
    if len(rows) < len(names):
        connection.execute(
            dialect_insert(connection, throttle_windows).on_conflict_do_nothing(
                index_elements=["name"]
            ),
            [{"name": name, "window_start": 0.0, "granted": 0, "finished": 0} for name in names],
        )
        rows = {row.name: dict(row._mapping) for row in connection.execute(locked)}
    return rows


def update_throttle_window(
    connection: Connection, name: str, values: Mapping[str, float | int | None]
) -> None:
    """Write new counts (and pause) to one window's row, which the caller has locked."""
    connection.execute(
        update(throttle_windows).where(throttle_windows.c.name == name).values(dict(values))
    )
