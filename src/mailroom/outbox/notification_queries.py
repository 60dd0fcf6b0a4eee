"""Every query behind notifications, named and kept together: stored templates and the
notification log (the consent queries are in :mod:`mailroom.consent.queries`).

Like :mod:`mailroom.outbox.queries`, each function takes an open connection inside a
transaction the caller owns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import notification_log, templates

__all__ = [
    "delete_template",
    "insert_notification_log",
    "list_templates",
    "load_template",
    "notification_outcomes",
    "outcome_counts",
    "save_template",
]


# -- templates ------------------------------------------------------------------------------


def load_template(connection: Connection, name: str) -> Mapping[str, Any] | None:
    """The stored template ``name`` (subject, html, text, updated_at), or ``None``."""
    row = connection.execute(select(templates).where(templates.c.name == name)).first()
    return dict(row._mapping) if row is not None else None


def save_template(
    connection: Connection,
    name: str,
    *,
    subject: str,
    html: str | None,
    text: str | None,
    now: float,
) -> None:
    """Create or replace the stored template ``name``."""
    values = {"subject": subject, "html": html, "text": text, "updated_at": now}
    statement = dialect_insert(connection, templates).values(name=name, **values)
    connection.execute(statement.on_conflict_do_update(index_elements=["name"], set_=values))


def list_templates(connection: Connection) -> list[Mapping[str, Any]]:
    """Every stored template (name, subject, html, text, updated_at), by name."""
    rows = connection.execute(select(templates).order_by(templates.c.name))
    return [dict(row._mapping) for row in rows]


def delete_template(connection: Connection, name: str) -> bool:
    """Remove the stored template ``name`` (a file of that name is used again); whether there
    was one."""
    return connection.execute(delete(templates).where(templates.c.name == name)).rowcount > 0


# -- notification log -----------------------------------------------------------------------


def insert_notification_log(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record what ``notify`` did for each recipient (queued, skipped, suppressed)."""
    if rows:
        connection.execute(notification_log.insert(), list(rows))


def notification_outcomes(
    connection: Connection, notification_type: str | None = None, since: float | None = None
) -> list[Mapping[str, Any]]:
    """Rows of the notification log, oldest first, optionally of one type and recent ones."""
    query = select(notification_log).order_by(notification_log.c.id)
    conditions = []
    if notification_type is not None:
        conditions.append(notification_log.c.notification_type == notification_type)
    if since is not None:
        conditions.append(notification_log.c.at >= since)
    if conditions:
        query = query.where(and_(*conditions))
    return [dict(row._mapping) for row in connection.execute(query)]


def outcome_counts(connection: Connection, since: float) -> dict[tuple[str, str], int]:
    """How many recipients each notification type had per outcome since ``since``:
    ``{(type, outcome): count}``. The log's index on ``at`` bounds the rows read to the
    period."""
    query = (
        select(notification_log.c.notification_type, notification_log.c.outcome, func.count())
        .where(notification_log.c.at >= since)
        .group_by(notification_log.c.notification_type, notification_log.c.outcome)
    )
    return {(str(kind), str(outcome)): int(n) for kind, outcome, n in connection.execute(query)}
