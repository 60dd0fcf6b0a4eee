"""The captured mail (``mailroom_captured``): what the ``capture`` transport delivered instead
of relaying, kept so a person (or a test) can see exactly what would have been sent.

The table is bounded: each store drops the oldest rows beyond ``keep`` (the setting
``CAPTURE_MAX_MESSAGES``) in the same transaction, so a forgotten development service cannot
fill its disk. Lists page by id (keyset), newest first, never by offset: a page stays right
while new mail is captured and old mail dropped.

Each function takes an open connection inside a transaction the caller owns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, cast, delete, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from mailroom.outbox.schema import captured

__all__ = [
    "CapturedMessage",
    "CapturedSummary",
    "delete_all_captured",
    "delete_captured",
    "get_captured",
    "list_captured",
    "store_captured",
]


@dataclass(frozen=True, slots=True)
class CapturedSummary:
    """One captured message without its bytes: a line of a list."""

    id: int
    message_pk: int | None
    """The outbox message it was delivered for; ``None`` for a test message sent directly, or
    once that message was purged."""
    message_id: str
    mail_from: str
    """The envelope sender (``MAIL FROM``)."""
    recipients: tuple[str, ...]
    """The envelope recipients (``RCPT TO``), Bcc included."""
    subject: str
    captured_at: float
    size: int
    """The length of the message's bytes."""


@dataclass(frozen=True, slots=True)
class CapturedMessage(CapturedSummary):
    """One captured message with the exact bytes a relay would have been given."""

    data: bytes


_SUMMARY_COLUMNS = (
    captured.c.id,
    captured.c.message_pk,
    captured.c.message_id,
    captured.c.mail_from,
    captured.c.recipients,
    captured.c.subject,
    captured.c.captured_at,
)


def store_captured(
    connection: Connection,
    *,
    message_pk: int | None,
    message_id: str,
    mail_from: str,
    recipients: Iterable[str],
    subject: str,
    data: bytes,
    now: float,
    keep: int,
) -> int:
    """Insert one captured message, then drop the oldest beyond the newest ``keep``; return
    the new row's id."""
    # Driver-level, as the outbox's own inserts: the capture transport runs it per message.
    values = (message_pk, message_id, mail_from, json.dumps(list(recipients)), subject, data, now)
    qmark = connection.dialect.paramstyle == "qmark"
    new_id = int(connection.exec_driver_sql(_INSERT if qmark else _INSERT_FORMAT, values).one()[0])
    # Ids only grow, so the newest ``keep`` are those above ``new_id - keep``: a range delete
    # on the primary key, not a walk over ``keep`` rows to find where the oldest begin. An id
    # that never was (a rolled-back insert) or a row deleted by hand is not refilled, so there
    # can be fewer than ``keep``, never more.
    connection.exec_driver_sql(_TRIM if qmark else _TRIM_FORMAT, (new_id - max(keep, 0),))
    return new_id


_COLUMNS = ("message_pk", "message_id", "mail_from", "recipients", "subject", "data")
_INSERT = (
    f"INSERT INTO {captured.name} ({', '.join(_COLUMNS)}, captured_at) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _COLUMNS)}, ?) RETURNING id"
)
_INSERT_FORMAT = _INSERT.replace("?", "%s")
_TRIM = f"DELETE FROM {captured.name} WHERE id <= ?"  # noqa: S608 - our own table's name
_TRIM_FORMAT = _TRIM.replace("?", "%s")


def list_captured(
    connection: Connection,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
    search: str | None = None,
) -> list[CapturedSummary]:
    """Captured messages, newest first: ``limit`` of them with ids below ``before`` (the last
    id of the previous page) and above ``after`` (the newest a watcher has already seen: what
    arrived since). ``search`` keeps those whose subject, sender or a recipient contains it,
    ignoring case (ASCII letters on SQLite, whose ``lower()`` folds only those).
    """
    query = select(*_SUMMARY_COLUMNS, func.length(captured.c.data).label("size"))
    if before is not None:
        query = query.where(captured.c.id < before)
    if after is not None:
        query = query.where(captured.c.id > after)
    if search:
        query = query.where(_matches(search))
    rows = connection.execute(query.order_by(captured.c.id.desc()).limit(max(limit, 0)))
    return [_summary(row._mapping) for row in rows]


def get_captured(connection: Connection, captured_id: int) -> CapturedMessage | None:
    """One captured message with its bytes, or ``None``."""
    row = connection.execute(
        select(*_SUMMARY_COLUMNS, captured.c.data).where(captured.c.id == captured_id)
    ).first()
    if row is None:
        return None
    fields = row._mapping
    data = bytes(fields["data"])
    return CapturedMessage(**_summary_fields(fields, len(data)), data=data)


def delete_captured(connection: Connection, captured_id: int) -> bool:
    """Delete one captured message; whether it was there."""
    result = connection.execute(delete(captured).where(captured.c.id == captured_id))
    return result.rowcount > 0


def delete_all_captured(connection: Connection) -> int:
    """Delete every captured message; how many there were."""
    return int(connection.execute(delete(captured)).rowcount)


def _summary(fields: Any) -> CapturedSummary:
    return CapturedSummary(**_summary_fields(fields, int(fields["size"])))


def _summary_fields(fields: Any, size: int) -> dict[str, Any]:
    return {
        "id": fields["id"],
        "message_pk": fields["message_pk"],
        "message_id": fields["message_id"],
        "mail_from": fields["mail_from"],
        "recipients": tuple(fields["recipients"]),
        "subject": fields["subject"],
        "captured_at": fields["captured_at"],
        "size": size,
    }


def _like_escape(text: str) -> str:
    # "/" rather than a backslash: the JSON text of the recipients is full of backslashes
    # (\uXXXX), and "/" needs no quoting in either dialect's ESCAPE clause.
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _matches(search: str) -> ColumnElement[bool]:
    """Subject, sender or any recipient contains ``search``, ignoring case. The recipients
    are searched as their JSON text, so the needle is JSON-encoded the same way first."""
    needle = search.lower()
    plain = f"%{_like_escape(needle)}%"
    encoded = f"%{_like_escape(json.dumps(needle)[1:-1])}%"
    return or_(
        func.lower(captured.c.subject).like(plain, escape="/"),
        func.lower(captured.c.mail_from).like(plain, escape="/"),
        func.lower(cast(captured.c.recipients, Text)).like(encoded, escape="/"),
    )
