"""The queries that record a message's life: insert messages (and look up the ids their
idempotency keys already hold), insert a follow-up for deferred recipients, complete a batch
of attempts (which ends their leases), and append to the send log.

Written for speed, as enqueueing and sending run them thousands of times a second (several
at the driver level, in the driver's own parameter style). Its siblings hold the other
subjects:
:mod:`~mailroom.outbox.lease_queries` (claim under a lease, recover expired leases, release),
:mod:`~mailroom.outbox.stream_queries` (stream pauses and throttle windows) and
:mod:`~mailroom.outbox.operator_queries` (what a person selects, reads, changes and purges).

Each function takes an open connection inside a transaction the caller owns, so a caller can
put several of them in one commit (a worker completes a whole batch in one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection, case, literal, select

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.message_insert import PreparedInsert, prepare_insert, run_insert
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.vocabulary import EventType, Status

__all__ = [
    "Completion",
    "complete",
    "find_by_idempotency_keys",
    "insert_followup",
    "insert_messages",
    "record_attempts",
]


def insert_messages(
    connection: Connection,
    rows: Sequence[Mapping[str, Any]],
    prepared: PreparedInsert | None = None,
) -> list[int | None]:
    """Insert message rows, each with a ``queued`` event per recipient; return their ids in
    order.

    Rows without an idempotency key go in as multi-row inserts, ``prepared`` from the same
    rows before the transaction began, if the caller did (see
    :mod:`~mailroom.outbox.message_insert`). A row with a key is
    inserted with ``ON CONFLICT DO NOTHING`` (so two racing callers cannot both insert it) and
    gets ``None`` when the key was already there; the caller then looks the existing id up
    with :func:`find_by_idempotency_keys`.
    """
    if not rows:
        return []
    if not any(row.get("idempotency_key") for row in rows):
        if prepared is None:
            prepared = prepare_insert(rows, connection.dialect)
        inserted: list[int | None] = list(run_insert(connection, prepared))
    else:
        inserted = _insert_with_keys(connection, rows)
    _record_queued(connection, rows, inserted)
    return inserted


def _record_queued(
    connection: Connection, rows: Sequence[Mapping[str, Any]], ids: Sequence[int | None]
) -> None:
    """The ``queued`` events of the rows just inserted (not of those an idempotency key
    already held: they were queued before), in the same transaction: one executemany."""
    record_events(
        connection,
        (
            EventRecord(message_pk, recipient, EventType.QUEUED, row["created_at"])
            for row, message_pk in zip(rows, ids, strict=True)
            if message_pk is not None
            for recipient in row["recipients"]
        ),
    )


def _insert_with_keys(
    connection: Connection, rows: Sequence[Mapping[str, Any]]
) -> list[int | None]:
    # RETURNING cannot say which rows of a multi-row insert were skipped: one by one.
    statement = (
        dialect_insert(connection, messages)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(messages.c.id)
    )
    ids: list[int | None] = []
    for row in rows:
        found = connection.execute(statement, [row]).first()
        ids.append(found.id if found else None)
    return ids


# The columns a follow-up sets itself, in the order insert_followup selects them, and those
# it leaves empty (or to their defaults); it copies every other column from its source.
_FOLLOWUP_SET = (
    "recipients",
    "status",
    "due_at",
    "created_at",
    "updated_at",
    "attempts",
    "last_error",
    "last_code",
    "last_enhanced_status",
)
_FOLLOWUP_CLEARED = frozenset(
    {
        "id",
        "idempotency_key",
        "idempotency_fingerprint",
        "sent_at",
        "lease_token",
        "lease_expires_at",
    }
)


def insert_followup(
    connection: Connection,
    source_id: int,
    recipients: Sequence[str],
    *,
    due_at: float,
    now: float,
    error: str | None = None,
    code: int | None = None,
    enhanced_status: str | None = None,
    attempts: int = 1,
    status: Status = Status.DEFERRED,
    keep_error: bool = False,
) -> int:
    """A copy of message ``source_id`` for some of its recipients, deferred to ``due_at``.

    Used when a relay refused some recipients for now (4xx) and accepted the others: the
    message is sent, and these recipients get their own row to retry. It keeps the bytes and
    the Message-ID (it is the same message) and starts with the ``attempts`` already made for
    these recipients (the source's, counting the one just made), so they keep their budget; its
    last error is the reply that deferred them (``error``, ``code``, ``enhanced_status``), so
    the queue says why the row exists; with ``keep_error``, that is only a fallback for a
    source row with no error of its own (call it before completing the source).
    """
    copied = [c for c in messages.c if c.name not in _FOLLOWUP_CLEARED.union(_FOLLOWUP_SET)]
    given: list[Any] = [
        literal(error, type_=messages.c.last_error.type),
        literal(code, type_=messages.c.last_code.type),
        literal(enhanced_status, type_=messages.c.last_enhanced_status.type),
    ]
    if keep_error:
        has_own = messages.c.last_error.is_not(None)
        own = (messages.c.last_error, messages.c.last_code, messages.c.last_enhanced_status)
        given = [
            case((has_own, column), else_=value) for column, value in zip(own, given, strict=True)
        ]
    source = select(
        *copied,
        literal(list(recipients), type_=messages.c.recipients.type).label("recipients"),
        literal(status.value).label("status"),
        literal(due_at).label("due_at"),
        messages.c.created_at,
        literal(now).label("updated_at"),
        literal(attempts).label("attempts"),
        given[0].label("last_error"),
        given[1].label("last_code"),
        given[2].label("last_enhanced_status"),
    ).where(messages.c.id == source_id)
    names = [c.name for c in copied] + list(_FOLLOWUP_SET)
    result = connection.execute(
        messages.insert().from_select(names, source).returning(messages.c.id)
    )
    return int(result.scalar_one())


def find_by_idempotency_keys(
    connection: Connection, keys: Iterable[str]
) -> dict[str, tuple[int, str | None]]:
    """key → (id, fingerprint of the request it was made for; ``None`` on older rows)."""
    wanted = list(keys)
    if not wanted:
        return {}
    rows = connection.execute(
        select(messages.c.idempotency_key, messages.c.id, messages.c.idempotency_fingerprint).where(
            messages.c.idempotency_key.in_(wanted)
        )
    )
    return {row.idempotency_key: (row.id, row.idempotency_fingerprint) for row in rows}


class Completion(NamedTuple):
    """The new state of one claimed message after an attempt.

    ``due_at`` is when it may be tried next (for a final state it is simply "now");
    ``attempts_used`` is 0 when the attempt does not count (a paused stream). With
    ``keep_error``, ``error`` (and its code) is written only if the row holds no error yet: a
    send cut short by a shutdown must not hide the relay's real reply of an earlier attempt.
    """

    id: int
    status: Status
    due_at: float
    attempts_used: int = 1
    sent_at: float | None = None
    error: str | None = None
    code: int | None = None
    enhanced_status: str | None = None
    keep_error: bool = False


def complete(
    connection: Connection, completions: Sequence[Completion], lease_token: str, now: float
) -> int:
    """Write a batch of outcomes in one executemany; return how many rows held our lease.

    Guarded by the lease token: a message whose lease expired and was claimed again by another
    worker is not overwritten by this (late) worker.
    """
    if not completions:
        return 0
    held = 0
    for sql, group in (
        (_COMPLETE, [c for c in completions if not c.keep_error]),
        (_COMPLETE_KEEPING_ERROR, [c for c in completions if c.keep_error]),
    ):
        if group:
            held += _complete(connection, sql, group, lease_token, now)
    return held


def _complete(
    connection: Connection,
    sql: str,
    completions: Sequence[Completion],
    lease_token: str,
    now: float,
) -> int:
    # Driver-level executemany with plain tuples: the compiled-statement path spent more time
    # building per-row parameter dicts than the database spent updating the rows.
    params = [
        (
            c.status.value,
            c.due_at,
            c.attempts_used,
            c.sent_at,
            c.error,
            c.code,
            c.enhanced_status,
            now,
            c.id,
            lease_token,
        )
        for c in completions
    ]
    result = connection.exec_driver_sql(_positional(connection, sql), params)
    return int(result.rowcount)


# Names from our own table metadata; every value is a bound parameter.
_COMPLETE = f"""
UPDATE {messages.name} SET status = ?, due_at = ?, attempts = attempts + ?, sent_at = ?,
    last_error = ?, last_code = ?, last_enhanced_status = ?,
    lease_token = NULL, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND lease_token = ?
"""  # noqa: S608
# The same, but an error already on the row stays (with its code): the new one is only a
# fallback. (The right-hand sides of an UPDATE see the row's old values.)
_COMPLETE_KEEPING_ERROR = f"""
UPDATE {messages.name} SET status = ?, due_at = ?, attempts = attempts + ?, sent_at = ?,
    last_error = COALESCE(last_error, ?),
    last_code = CASE WHEN last_error IS NULL THEN ? ELSE last_code END,
    last_enhanced_status = CASE WHEN last_error IS NULL THEN ? ELSE last_enhanced_status END,
    lease_token = NULL, lease_expires_at = NULL, updated_at = ?
WHERE id = ? AND lease_token = ?
"""  # noqa: S608

_ATTEMPT_COLUMNS = tuple(c.name for c in attempts.c if c.name != "id")
_RECORD_ATTEMPTS = (
    f"INSERT INTO {attempts.name} ({', '.join(_ATTEMPT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in _ATTEMPT_COLUMNS)})"
)


def _positional(connection: Connection, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own style."""
    return sql if connection.dialect.paramstyle == "qmark" else sql.replace("?", "%s")


def record_attempts(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append to the send log (one row per recipient per attempt)."""
    if rows:
        connection.exec_driver_sql(
            _positional(connection, _RECORD_ATTEMPTS),
            [tuple(row[name] for name in _ATTEMPT_COLUMNS) for row in rows],
        )
