"""Every query a person runs on the outbox: select by filters, read one message and its send
log, change state guarded by status, purge, and count for the status report.

The statements behind :mod:`mailroom.outbox.operations` and :mod:`mailroom.outbox.status`;
what may be changed, and refusing an empty selection, is decided there. Every state change is
guarded, in the ``UPDATE`` itself, by the states it may change *from*, so a row a worker changes
at the same moment is simply not matched rather than overwritten.

Each function takes an open :class:`~sqlalchemy.Connection` inside a transaction the caller
owns (the read-only ones too, so a web page can read several in one consistent snapshot).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar, Unpack

from sqlalchemy import (
    ColumnElement,
    Connection,
    Text,
    and_,
    cast,
    delete,
    false,
    func,
    select,
    update,
)

from mailroom.outbox import ledger_state_queries
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.vocabulary import Status

__all__ = [
    "AttemptRow",
    "Filters",
    "MessageDetail",
    "MessageRow",
    "attempts_for",
    "cancel_selected",
    "count_messages",
    "count_purgeable",
    "counts_by_status",
    "delete_purgeable",
    "escaped_like",
    "list_messages",
    "message_detail",
    "purgeable",
    "recent_failures",
    "retry_selected",
    "selects_all",
    "sent_since",
]


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One line of ``mailroom queue list``."""

    id: int
    status: Status
    stream: str
    subject: str
    recipients: tuple[str, ...]
    attempts: int
    created_at: float
    due_at: float
    last_error: str | None


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """Everything stored about one message, for ``mailroom queue show``."""

    id: int
    message_id: str
    status: Status
    stream: str
    priority: int
    sender: str
    recipients: tuple[str, ...]
    subject: str
    attempts: int
    created_at: float
    due_at: float
    updated_at: float
    sent_at: float | None
    last_error: str | None
    last_code: int | None
    last_enhanced_status: str | None
    idempotency_key: str | None
    extra: dict[str, Any] | None
    consent_scopes: list[str] | None
    """The suppression scopes checked when a worker claims it; ``None`` for a plain send."""
    consent_required: bool | None
    smtputf8: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One row of the send log: one recipient in one delivery attempt."""

    id: int
    attempt: int
    at: float
    duration_ms: float
    recipient: str
    transport: str
    outcome: str
    code: int | None
    enhanced_status: str | None
    server_text: str | None
    possible_duplicate: bool
    worker: str


Row = TypeVar("Row", MessageRow, MessageDetail, AttemptRow)

# What a stored value becomes in a row object; the others are taken as they are.
_CONVERTED: dict[str, Any] = {"status": Status, "recipients": tuple, "data": bytes}


def _row(kind: type[Row], row: Any) -> Row:
    """``kind`` (a row dataclass) from a result row holding at least its fields."""
    values = {}
    for field in dataclasses.fields(kind):
        value = getattr(row, field.name)
        convert = _CONVERTED.get(field.name)
        values[field.name] = value if convert is None else convert(value)
    return kind(**values)


_LIST_COLUMNS = tuple(messages.c[field.name] for field in dataclasses.fields(MessageRow))


class Filters(TypedDict, total=False):
    """The operator's selection, shared by listing, counting, retrying and cancelling.

    ``ids`` selects only these message ids (an empty sequence selects nothing); ``status``
    and ``stream`` are equalities; ``recipient`` is a case-insensitive substring of any
    recipient address.
    """

    ids: Sequence[int] | None
    status: Status | None
    stream: str | None
    recipient: str | None
    older_than: float | None
    """``created_at`` before this time."""
    newer_than: float | None
    """``created_at`` at or after this time."""


def escaped_like(text: str) -> str:
    """``text`` with LIKE's wildcards quoted, for a pattern with ``ESCAPE '/'``."""
    # "/" rather than the usual backslash: the JSON text being searched is full of
    # backslashes (\uXXXX), and "/" needs no quoting in either dialect's ESCAPE clause.
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _recipient_matches(needle: str) -> ColumnElement[bool]:
    """A case-insensitive substring match on the JSON ``recipients`` column, on both dialects.

    The column is searched as its JSON text (``CAST(recipients AS TEXT)``), so the needle is
    JSON-encoded the same way (non-ASCII as ``\\uXXXX``) before matching. ``lower()`` folds
    ASCII letters only there; non-ASCII letters must match in case.
    """
    encoded = json.dumps(needle.lower())[1:-1]
    return func.lower(cast(messages.c.recipients, Text)).like(
        f"%{escaped_like(encoded)}%", escape="/"
    )


def _filters(**filters: Unpack[Filters]) -> list[ColumnElement[bool]]:
    ids = filters.get("ids")
    status = filters.get("status")
    stream = filters.get("stream")
    recipient = filters.get("recipient")
    older_than = filters.get("older_than")
    newer_than = filters.get("newer_than")
    conditions: list[ColumnElement[bool]] = []
    if ids is not None:
        conditions.append(messages.c.id.in_(list(ids)) if ids else false())
    if status is not None:
        conditions.append(messages.c.status == status.value)
    if stream is not None:
        conditions.append(messages.c.stream == stream)
    if recipient:
        conditions.append(_recipient_matches(recipient))
    if older_than is not None:
        conditions.append(messages.c.created_at < older_than)
    if newer_than is not None:
        conditions.append(messages.c.created_at >= newer_than)
    return conditions


def selects_all(**filters: Unpack[Filters]) -> bool:
    """Whether these filters restrict nothing (so they would select every message)."""
    return not _filters(**filters)


def list_messages(
    connection: Connection, *, limit: int, before_id: int | None = None, **filters: Unpack[Filters]
) -> list[MessageRow]:
    """Matching messages, newest (highest id) first, at most ``limit``, below ``before_id``."""
    conditions = _filters(**filters)
    if before_id is not None:
        conditions.append(messages.c.id < before_id)
    rows = connection.execute(
        select(*_LIST_COLUMNS).where(*conditions).order_by(messages.c.id.desc()).limit(limit)
    )
    return [_row(MessageRow, row) for row in rows]


def count_messages(connection: Connection, **filters: Unpack[Filters]) -> int:
    """How many messages match."""
    conditions = _filters(**filters)
    found = connection.execute(select(func.count()).select_from(messages).where(*conditions))
    return int(found.scalar() or 0)


def message_detail(connection: Connection, message_pk: int) -> MessageDetail | None:
    """Every stored field of one message (its bytes included), or ``None`` if there is none."""
    row = connection.execute(select(messages).where(messages.c.id == message_pk)).first()
    return None if row is None else _row(MessageDetail, row)


def attempts_for(connection: Connection, message_pk: int) -> list[AttemptRow]:
    """The send log of one message, oldest first (by id: the order the rows were written)."""
    rows = connection.execute(
        select(attempts).where(attempts.c.message_pk == message_pk).order_by(attempts.c.id)
    )
    return [_row(AttemptRow, row) for row in rows]


def _move(
    connection: Connection,
    allowed: Sequence[Status],
    selection: Sequence[ColumnElement[bool]],
    **values: Any,
) -> int:
    """Update the selected messages that are in one of the ``allowed`` states."""
    result = connection.execute(
        update(messages)
        .where(messages.c.status.in_([s.value for s in allowed]), *selection)
        .values(**values)
    )
    return result.rowcount


def retry_selected(
    connection: Connection, *, allowed: Sequence[Status], now: float, **filters: Unpack[Filters]
) -> int:
    """Put the selected messages in the ``allowed`` states back in the queue; how many.

    A cancelled one that was scheduled for later and never tried (no attempts, due after
    ``now``) goes back to ``scheduled`` with its time kept; the others are due ``now``, with
    ``attempts`` at 0. ``last_error`` stays.
    """
    selection = _filters(**filters)
    rescheduled = 0
    if Status.CANCELLED in allowed:
        rescheduled = _move(
            connection,
            (Status.CANCELLED,),
            [*selection, messages.c.attempts == 0, messages.c.due_at > now],
            status=Status.SCHEDULED.value,
            lease_token=None,
            lease_expires_at=None,
            updated_at=now,
        )
    # The rows just rescheduled are no longer in an allowed state: this cannot match them.
    return rescheduled + _move(
        connection,
        allowed,
        selection,
        status=Status.QUEUED.value,
        due_at=now,
        attempts=0,
        lease_token=None,
        lease_expires_at=None,
        updated_at=now,
    )


def cancel_selected(
    connection: Connection, *, allowed: Sequence[Status], now: float, **filters: Unpack[Filters]
) -> int:
    """Mark the selected messages in the ``allowed`` states cancelled; how many."""
    return _move(
        connection, allowed, _filters(**filters), status=Status.CANCELLED.value, updated_at=now
    )


def _purge_conditions(statuses: Sequence[Status], older_than: float) -> list[ColumnElement[bool]]:
    if not statuses:
        return [false()]
    # updated_at, not created_at: for a final state it is when the message got there, so a
    # week-old message that failed an hour ago (after a retry) is not purged before anyone
    # has looked at it.
    return [
        messages.c.status.in_([s.value for s in statuses]),
        messages.c.updated_at < older_than,
    ]


def purgeable(
    connection: Connection, *, older_than: float, statuses: Sequence[Status], limit: int
) -> list[MessageRow]:
    """Messages in ``statuses`` last changed before ``older_than``, newest first."""
    rows = connection.execute(
        select(*_LIST_COLUMNS)
        .where(*_purge_conditions(statuses, older_than))
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    return [_row(MessageRow, row) for row in rows]


def count_purgeable(
    connection: Connection, *, older_than: float, statuses: Sequence[Status]
) -> int:
    """How many messages in ``statuses`` were last changed before ``older_than``."""
    found = connection.execute(
        select(func.count()).select_from(messages).where(*_purge_conditions(statuses, older_than))
    )
    return int(found.scalar() or 0)


def delete_purgeable(
    connection: Connection, *, older_than: float, statuses: Sequence[Status], limit: int | None
) -> int:
    """Delete those messages (oldest ids first, at most ``limit``); their send log goes with
    them (``ON DELETE CASCADE``; the SQLite engine turns foreign keys on)."""
    conditions = _purge_conditions(statuses, older_than)
    doomed = select(messages.c.id).where(*conditions).order_by(messages.c.id)
    if limit is not None:
        doomed = doomed.limit(limit)
    # A campaign's results outlive its messages: the ledger keeps each one's outcome.
    ledger_state_queries.settle_before_purge(connection, doomed)
    if limit is None:
        statement = delete(messages).where(*conditions)
    else:
        statement = delete(messages).where(messages.c.id.in_(doomed.scalar_subquery()))
    return connection.execute(statement).rowcount


# -- the status report ----------------------------------------------------------------


def counts_by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(messages.c.status, func.count()).group_by(messages.c.status))
    counts = {status.value: 0 for status in Status}
    counts.update({row[0]: row[1] for row in rows})
    return counts


def sent_since(connection: Connection, since: float) -> int:
    """Messages sent at or after ``since`` (for send rates)."""
    return int(
        connection.execute(
            select(func.count()).where(
                and_(messages.c.status == Status.SENT.value, messages.c.sent_at >= since)
            )
        ).scalar()
        or 0
    )


def recent_failures(connection: Connection, limit: int = 5) -> list[dict[str, Any]]:
    """The newest attempts that did not deliver, for ``mailroom status``."""
    rows = connection.execute(
        select(
            attempts.c.at,
            attempts.c.message_pk,
            attempts.c.recipient,
            attempts.c.outcome,
            attempts.c.code,
            attempts.c.enhanced_status,
            attempts.c.server_text,
        )
        .where(attempts.c.outcome != "sent")
        .order_by(attempts.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]
