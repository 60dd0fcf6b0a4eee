"""What an operator does to the outbox: look at the queue, retry, cancel, purge, streams.

The one API the CLI and the web admin both call, so both allow exactly the same changes. Every
state change is limited to the states it may change *from* (:data:`RETRYABLE`,
:data:`CANCELLABLE`, :data:`PURGEABLE`), so an operator can never touch a message a worker
holds (``sending``) or one already delivered (``sent``); and a change with no ids and no filter
is refused (:class:`~mailroom.errors.NothingSelectedError`) unless ``everything`` is asked for.
The statements are in :mod:`mailroom.outbox.operator_queries` and
:mod:`mailroom.outbox.stream_queries`.

Like the queries, each function takes an open :class:`~sqlalchemy.Connection` inside a
transaction the caller owns (the read-only ones too, so one style serves the CLI and a web
page that wants a consistent snapshot of several of them).

Filters (:class:`~mailroom.outbox.operator_queries.Filters`) shared by :func:`list_messages`,
:func:`count_messages`, :func:`retry` and :func:`cancel`:

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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Unpack

from sqlalchemy import Connection

from mailroom.errors import NothingSelectedError
from mailroom.outbox import operator_queries, stream_queries
from mailroom.outbox.operator_queries import (
    AttemptRow,
    Filters,
    MessageDetail,
    MessageRow,
    attempts_for,
    count_messages,
    message_detail,
)
from mailroom.outbox.vocabulary import FINAL, STREAM_PRIORITIES, Status

__all__ = [
    "CANCELLABLE",
    "PURGEABLE",
    "RETRYABLE",
    "AttemptRow",
    "Filters",
    "MessageDetail",
    "MessageRow",
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
    return operator_queries.list_messages(connection, limit=limit, before_id=before_id, **filters)


def _refuse_everything(everything: bool, filters: Filters) -> None:
    """Refuse a state change that selects every message, unless ``everything`` says so."""
    if not everything and operator_queries.selects_all(**filters):
        raise NothingSelectedError(
            "give message ids or at least one filter, or everything=True to select all"
        )


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
    _refuse_everything(everything, filters)
    return operator_queries.retry_selected(connection, allowed=RETRYABLE, now=now, **filters)


def cancel(
    connection: Connection, *, now: float, everything: bool = False, **filters: Unpack[Filters]
) -> int:
    """Withdraw queued, scheduled and deferred messages; return how many were cancelled.

    A message in ``sending`` is never cancelled: its worker may already have handed it to the
    relay, and its completion would overwrite the cancellation anyway. The status guard is in
    the ``UPDATE`` itself, so a row a worker claims at the same moment is simply not matched.
    """
    _refuse_everything(everything, filters)
    return operator_queries.cancel_selected(connection, allowed=CANCELLABLE, now=now, **filters)


def _final_only(statuses: Sequence[Status]) -> None:
    live = [s for s in statuses if s not in PURGEABLE]
    if live:
        names = ", ".join(s.value for s in live)
        raise ValueError(f"only messages in a final state can be purged, not {names}")


def purgeable(
    connection: Connection,
    *,
    older_than: float,
    statuses: Sequence[Status] = PURGEABLE,
    limit: int = 50,
) -> list[MessageRow]:
    """What :func:`purge` would delete (newest first, at most ``limit``), for a dry run."""
    _final_only(statuses)
    return operator_queries.purgeable(
        connection, older_than=older_than, statuses=statuses, limit=limit
    )


def count_purgeable(
    connection: Connection, *, older_than: float, statuses: Sequence[Status] = PURGEABLE
) -> int:
    """How many messages :func:`purge` would delete."""
    _final_only(statuses)
    return operator_queries.count_purgeable(connection, older_than=older_than, statuses=statuses)


def purge(
    connection: Connection,
    *,
    older_than: float,
    statuses: Sequence[Status] = PURGEABLE,
    limit: int | None = None,
) -> int:
    """Delete messages in a final state last changed before ``older_than``; return how many.

    Their send-log rows go with them. ``statuses`` may only name final states: a live message
    is never deleted. With ``limit``, at most that many go per call, so a caller can delete a
    large backlog in short transactions that do not hold SQLite's single writer lock against
    the workers.
    """
    _final_only(statuses)
    return operator_queries.delete_purgeable(
        connection, older_than=older_than, statuses=statuses, limit=limit
    )


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
    state = {row["name"]: row for row in stream_queries.streams_state(connection)}
    waiting = stream_queries.waiting_by_stream(connection)
    names = set(STREAM_PRIORITIES) | stream_queries.stream_names(connection)
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
    return stream_queries.lift_pause(connection, name, now)
