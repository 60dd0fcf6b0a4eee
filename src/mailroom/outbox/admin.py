"""The operators' queries on the outbox: look at the queue, retry, cancel, purge.

Kept apart from :mod:`mailroom.outbox.queries` (the delivery path) because these are driven by
a person at a terminal or an admin page, not by a worker: they select by filters, page by id,
and every state change is guarded by the status it may change *from*, so an operator can never
touch a message a worker holds (``sending``) or one already delivered (``sent``).

Like the delivery queries, each function takes an open :class:`~sqlalchemy.Connection` inside
a transaction the caller owns (the read-only ones too, so one style serves the CLI and a web
page that wants a consistent snapshot of several of them).

Filters shared by :func:`list_messages`, :func:`count_messages`, :func:`retry` and
:func:`cancel`:

``ids``
    only these message ids (an empty sequence selects nothing);
``status``, ``stream``
    equality;
``recipient``
    a case-insensitive substring of any recipient address;
``older_than`` / ``newer_than``
    ``created_at`` strictly before / at or after this epoch time.

Retrying resets ``attempts`` to 0, so an operator's retry gets the full ``EMAIL_MAX_ATTEMPTS``
allowance again instead of giving up after one more transient failure. The send log keeps every
earlier attempt (its ``attempt`` numbers start again at 1; its rows stay in ``id`` order).
``EMAIL_MAX_AGE`` still counts from the message's creation, which a retry does not change: a
retried message older than that is given up after its first transient failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from sqlalchemy import (
    ColumnElement,
    Connection,
    Text,
    cast,
    delete,
    false,
    func,
    select,
    update,
)

from mailroom.outbox import queries
from mailroom.outbox.schema import FINAL, STREAM_PRIORITIES, Status, attempts, messages

__all__ = [
    "CANCELLABLE",
    "PURGEABLE",
    "RETRYABLE",
    "AttemptRow",
    "MessageDetail",
    "MessageRow",
    "NothingSelectedError",
    "StreamRow",
    "attempts_for",
    "cancel",
    "count_messages",
    "count_purgeable",
    "list_messages",
    "list_streams",
    "message_detail",
    "purge",
    "purgeable",
    "resume_stream",
    "retry",
]

RETRYABLE = (Status.FAILED, Status.DEFERRED, Status.CANCELLED)
"""What :func:`retry` puts back in the queue. Never ``sending`` (a worker holds it) or ``sent``."""
CANCELLABLE = (Status.QUEUED, Status.SCHEDULED, Status.DEFERRED)
"""What :func:`cancel` withdraws. Not ``sending``: the relay may already have the message."""
PURGEABLE = FINAL
"""What :func:`purge` may delete: messages nothing will ever act on again."""


class NothingSelectedError(ValueError):
    """A state change was asked for with no ids and no filter, and not for ``everything``.

    Refused so that a forgotten option cannot retry or cancel the whole outbox.
    """


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


_LIST_COLUMNS = (
    messages.c.id,
    messages.c.status,
    messages.c.stream,
    messages.c.subject,
    messages.c.recipients,
    messages.c.attempts,
    messages.c.created_at,
    messages.c.due_at,
    messages.c.last_error,
)


def _message_row(row: Any) -> MessageRow:
    return MessageRow(
        id=row.id,
        status=Status(row.status),
        stream=row.stream,
        subject=row.subject,
        recipients=tuple(row.recipients),
        attempts=row.attempts,
        created_at=row.created_at,
        due_at=row.due_at,
        last_error=row.last_error,
    )


def _like_escape(text: str) -> str:
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
        f"%{_like_escape(encoded)}%", escape="/"
    )


class Filters(TypedDict, total=False):
    """The operator's selection, shared by listing, counting, retrying and cancelling."""

    ids: Sequence[int] | None
    status: Status | None
    stream: str | None
    recipient: str | None
    older_than: float | None
    """``created_at`` before this time."""
    newer_than: float | None
    """``created_at`` at or after this time."""


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


def _selected(*, everything: bool, **filters: Unpack[Filters]) -> list[ColumnElement[bool]]:
    """The filters of a state change, refusing an empty selection unless ``everything``."""
    conditions = _filters(**filters)
    if not conditions and not everything:
        raise NothingSelectedError(
            "give message ids or at least one filter, or everything=True to select all"
        )
    return conditions


def list_messages(
    connection: Connection,
    *,
    limit: int = 50,
    before_id: int | None = None,
    **filters: Unpack[Filters],
) -> list[MessageRow]:
    """Matching messages, newest (highest id) first, at most ``limit`` of them.

    Page with ``before_id``: pass the last id of one page to get the next. Paging by id (not
    ``OFFSET``) stays fast and skips nothing when new messages arrive between pages.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    conditions = _filters(**filters)
    if before_id is not None:
        conditions.append(messages.c.id < before_id)
    rows = connection.execute(
        select(*_LIST_COLUMNS).where(*conditions).order_by(messages.c.id.desc()).limit(limit)
    )
    return [_message_row(row) for row in rows]


def count_messages(connection: Connection, **filters: Unpack[Filters]) -> int:
    """How many messages match, so a listing can say "50 of 1234"."""
    conditions = _filters(**filters)
    found = connection.execute(select(func.count()).select_from(messages).where(*conditions))
    return int(found.scalar() or 0)


def message_detail(connection: Connection, message_pk: int) -> MessageDetail | None:
    """Every stored field of one message (its bytes included), or ``None`` if there is none."""
    row = connection.execute(select(messages).where(messages.c.id == message_pk)).first()
    if row is None:
        return None
    return MessageDetail(
        id=row.id,
        message_id=row.message_id,
        status=Status(row.status),
        stream=row.stream,
        priority=row.priority,
        sender=row.sender,
        recipients=tuple(row.recipients),
        subject=row.subject,
        attempts=row.attempts,
        created_at=row.created_at,
        due_at=row.due_at,
        updated_at=row.updated_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        last_code=row.last_code,
        last_enhanced_status=row.last_enhanced_status,
        idempotency_key=row.idempotency_key,
        extra=row.extra,
        smtputf8=row.smtputf8,
        data=bytes(row.data),
    )


def attempts_for(connection: Connection, message_pk: int) -> list[AttemptRow]:
    """The send log of one message, oldest first (by id: the order the rows were written)."""
    rows = connection.execute(
        select(attempts).where(attempts.c.message_pk == message_pk).order_by(attempts.c.id)
    )
    return [
        AttemptRow(
            id=row.id,
            attempt=row.attempt,
            at=row.at,
            duration_ms=row.duration_ms,
            recipient=row.recipient,
            transport=row.transport,
            outcome=row.outcome,
            code=row.code,
            enhanced_status=row.enhanced_status,
            server_text=row.server_text,
            possible_duplicate=row.possible_duplicate,
            worker=row.worker,
        )
        for row in rows
    ]


def retry(
    connection: Connection, *, now: float, everything: bool = False, **filters: Unpack[Filters]
) -> int:
    """Put failed, deferred and cancelled messages back in the queue, due ``now``.

    A cancelled message that was scheduled for later and never tried (no attempts, due after
    ``now``) goes back to ``scheduled`` with its time kept: undoing a cancellation must not
    send tomorrow's message at once. Everything else is due ``now``.

    ``attempts`` goes back to 0 so the retry gets the full ``EMAIL_MAX_ATTEMPTS`` (see the
    module docstring). ``last_error`` is kept: it still says why the message had stopped.
    Selected messages in any other state are left alone; returns how many changed.
    """
    selection = _selected(everything=everything, **filters)
    rescheduled = _move(
        connection,
        (Status.CANCELLED,),
        [*selection, messages.c.attempts == 0, messages.c.due_at > now],
        status=Status.SCHEDULED.value,
        lease_token=None,
        lease_expires_at=None,
        updated_at=now,
    )
    # The rows just rescheduled are no longer in a RETRYABLE state: this cannot match them.
    return rescheduled + _move(
        connection,
        RETRYABLE,
        selection,
        status=Status.QUEUED.value,
        due_at=now,
        attempts=0,
        lease_token=None,
        lease_expires_at=None,
        updated_at=now,
    )


def cancel(
    connection: Connection, *, now: float, everything: bool = False, **filters: Unpack[Filters]
) -> int:
    """Withdraw queued, scheduled and deferred messages; return how many were cancelled.

    A message in ``sending`` is never cancelled: its worker may already have handed it to the
    relay, and its completion would overwrite the cancellation anyway. The status guard is in
    the ``UPDATE`` itself, so a row a worker claims at the same moment is simply not matched.
    """
    selection = _selected(everything=everything, **filters)
    return _move(connection, CANCELLABLE, selection, status=Status.CANCELLED.value, updated_at=now)


def _move(
    connection: Connection,
    allowed: Sequence[Status],
    selection: Sequence[ColumnElement[bool]],
    **values: Any,
) -> int:
    """Update the selected messages that are in one of the ``allowed`` states.

    The state guard is part of the ``UPDATE``, so a row a worker changes at the same moment
    is simply not matched rather than overwritten.
    """
    result = connection.execute(
        update(messages)
        .where(messages.c.status.in_([s.value for s in allowed]), *selection)
        .values(**values)
    )
    return result.rowcount


def _purge_conditions(statuses: Sequence[Status], older_than: float) -> list[ColumnElement[bool]]:
    live = [s for s in statuses if s not in PURGEABLE]
    if live:
        names = ", ".join(s.value for s in live)
        raise ValueError(f"only messages in a final state can be purged, not {names}")
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
    connection: Connection,
    *,
    older_than: float,
    statuses: Sequence[Status] = PURGEABLE,
    limit: int = 50,
) -> list[MessageRow]:
    """What :func:`purge` would delete (newest first, at most ``limit``), for a dry run."""
    rows = connection.execute(
        select(*_LIST_COLUMNS)
        .where(*_purge_conditions(statuses, older_than))
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    return [_message_row(row) for row in rows]


def count_purgeable(
    connection: Connection, *, older_than: float, statuses: Sequence[Status] = PURGEABLE
) -> int:
    """How many messages :func:`purge` would delete."""
    found = connection.execute(
        select(func.count()).select_from(messages).where(*_purge_conditions(statuses, older_than))
    )
    return int(found.scalar() or 0)


def purge(
    connection: Connection,
    *,
    older_than: float,
    statuses: Sequence[Status] = PURGEABLE,
    limit: int | None = None,
) -> int:
    """Delete messages in a final state last changed before ``older_than``; return how many.

    Their send-log rows go with them (``ON DELETE CASCADE``; the SQLite engine turns foreign
    keys on). ``statuses`` may only name final states: a live message is never deleted.
    With ``limit``, at most that many go per call, so a caller can delete a large backlog in
    short transactions that do not hold SQLite's single writer lock against the workers.
    """
    conditions = _purge_conditions(statuses, older_than)
    if limit is None:
        statement = delete(messages).where(*conditions)
    else:
        batch = select(messages.c.id).where(*conditions).order_by(messages.c.id).limit(limit)
        statement = delete(messages).where(messages.c.id.in_(batch.scalar_subquery()))
    return connection.execute(statement).rowcount


# -- streams -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRow:
    """One stream, for ``mailroom streams list`` and ``mailroom status``."""

    name: str
    priority: int
    """Lower is sent sooner (``transactional`` 0, ``bulk`` 100, others 50)."""
    waiting: int
    """Messages queued, scheduled or deferred in it."""
    paused_until: float | None
    """When its pause ends, if it is paused now."""
    reason: str | None
    """What went wrong, when paused: our configuration, as the relay told it."""
    advice: str | None
    """What to change, when paused (the advice ``send-test-email`` gives for that error)."""


def list_streams(connection: Connection, *, now: float) -> list[StreamRow]:
    """Every known stream (the built-in ones, those with messages, those ever paused), in
    priority order; a pause that has run out is not shown as one."""
    state = {row["name"]: row for row in queries.streams_state(connection)}
    waiting = queries.waiting_by_stream(connection)
    names = set(STREAM_PRIORITIES) | queries.stream_names(connection)
    rows = []
    for name in names:
        paused_until = (state.get(name) or {}).get("paused_until")
        reason = advice = None
        if paused_until is not None and paused_until > now:
            text = state[name]["pause_reason"] or ""
            first, _, rest = text.partition("\n")
            reason, advice = first or None, rest.strip() or None
        else:
            paused_until = None
        rows.append(
            StreamRow(
                name=name,
                priority=STREAM_PRIORITIES.get(name, 50),
                waiting=waiting.get(name, 0),
                paused_until=paused_until,
                reason=reason,
                advice=advice,
            )
        )
    return sorted(rows, key=lambda row: (row.priority, row.name))


def resume_stream(connection: Connection, name: str, *, now: float) -> bool:
    """Lift a stream's pause now, after the setting was fixed; ``False`` if it was not paused.

    Its messages are due at once: the next worker pass sends them. If the setting is still
    wrong, the first of them pauses the stream again (for the shortest pause).
    """
    return queries.lift_pause(connection, name, now)
