"""The admin's message search: filter the outbox, newest first, a page at a time.

What can be searched, and how each filter stays fast on a million messages (the indexes are
in :mod:`mailroom.outbox.schema`, revision 0009):

``status``, ``stream``, ``notification_type``
    equalities, each leading an index ``(x, created_at, id)``: a page is the next rows of one
    index range, in order, whatever the table's size. The notification type is the one
    ``notify`` writes into the message's metadata (``extra["notification_type"]``).
``recipient``
    an **exact** address, in any case. The messages hold their recipients as a JSON list,
    which no index of both SQLite and PostgreSQL can look inside; every recipient of every
    message also has an event row of its own (its ``queued`` event, then one per attempt), so
    the address is looked up in ``ix_mailroom_events_recipient_lower`` and only those messages
    are read. A substring of an address cannot use any index (a ``LIKE '%x%'`` reads every
    row), so it is not offered. A follow-up row (recipients a relay deferred while it accepted
    the others) has no event of its own until it is tried again; until then its source
    message, which is found, shows the deferral.
``subject``
    a case-insensitive substring: no portable index serves that either, so it is checked on
    the rows the other filters and the date range select, newest first, until a page is full.
    Alone, it reads ``(created_at, id)`` backwards and stops at the page: fast when the words
    are common, a scan of the range when they are rare. The bench measures both.
``created_from`` / ``created_before``
    ``created_at`` at or after / strictly before these epoch times.

Pages are keyset-paginated by ``(created_at, id)``, not by ``OFFSET``: the thousandth page
costs what the first does, and messages arriving meanwhile neither shift nor repeat rows. The
cursor is opaque to callers (base64 of the last row's key); a cursor that was not made here
raises :class:`~mailroom.errors.InvalidCursorError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from mailroom.errors import InvalidCursorError
from mailroom.outbox.operator_queries import escaped_like
from mailroom.outbox.query_plans import explain
from mailroom.outbox.schema import events, messages, notification_type_of
from mailroom.outbox.vocabulary import Status

__all__ = [
    "MAX_PAGE",
    "SCAN_WINDOW",
    "FoundMessage",
    "MessageSearch",
    "SearchPage",
    "decode_cursor",
    "encode_cursor",
    "search_messages",
    "search_plan",
]

MAX_PAGE = 500
"""The largest page :func:`search_messages` returns."""

SCAN_WINDOW = 20_000
"""The most messages one page of a search examines when no one index answers it (a subject;
two or more of status, stream, type and recipient): tens of milliseconds of reading on either
database, whatever the outbox's size (see bench/messages_search.py)."""


@dataclass(frozen=True, slots=True)
class MessageSearch:
    """What to look for; every field left ``None`` (or empty) restricts nothing."""

    recipient: str | None = None
    """An exact address, matched regardless of case."""
    subject: str | None = None
    """A substring of the subject, matched regardless of (ASCII) case."""
    status: Status | None = None
    stream: str | None = None
    notification_type: str | None = None
    created_from: float | None = None
    """``created_at`` at or after this epoch time."""
    created_before: float | None = None
    """``created_at`` strictly before this epoch time."""


@dataclass(frozen=True, slots=True)
class FoundMessage:
    """One line of the search's list."""

    id: int
    created_at: float
    status: Status
    stream: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    notification_type: str | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of results, newest first, and the cursor of the next (``None``: no more)."""

    rows: tuple[FoundMessage, ...]
    next_cursor: str | None
    searched_back_to: float | None = None
    """Set when the page stopped at its scan window (:data:`SCAN_WINDOW`) before it was
    full: every match created at or after this time is shown (on this page or earlier
    ones), and ``next_cursor`` searches on from there."""


_YEAR_10000 = 253_402_300_800.0  # seconds since 1970: no message is made later


def encode_cursor(created_at: float, message_pk: int) -> str:
    """The cursor that continues after the row with this key."""
    raw = json.dumps([created_at, message_pk], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """The key a cursor of :func:`encode_cursor` holds; :class:`InvalidCursorError` for
    anything else (edited, truncated, or never made here)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, message_pk = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise InvalidCursorError("the page cursor is not one this search made") from exc
    if (
        isinstance(created_at, bool)
        or not isinstance(created_at, int | float)
        or not math.isfinite(created_at)
        or not 0 <= created_at < _YEAR_10000
        or isinstance(message_pk, bool)
        or not isinstance(message_pk, int)
        # A key no column holds: the database would refuse the number itself (an error,
        # not an empty page).
        or not 0 <= message_pk < 2**63
    ):
        raise InvalidCursorError("the page cursor is not one this search made")
    return float(created_at), message_pk


_stored_type = notification_type_of(messages.c.extra)
_COLUMNS = (
    messages.c.id,
    messages.c.created_at,
    messages.c.status,
    messages.c.stream,
    messages.c.sender,
    messages.c.recipients,
    messages.c.subject,
    _stored_type.label("notification_type"),
    messages.c.attempts,
    messages.c.last_error,
)


def _equalities(search: MessageSearch) -> list[ColumnElement[bool]]:
    """The filters an index can lead with: each alone is read straight off its index."""
    conditions: list[ColumnElement[bool]] = []
    if search.status is not None:
        conditions.append(messages.c.status == search.status.value)
    if search.stream:
        conditions.append(messages.c.stream == search.stream)
    if search.notification_type:
        conditions.append(_stored_type == search.notification_type)
    if search.recipient and search.recipient.strip():
        address = search.recipient.strip().lower()
        conditions.append(
            messages.c.id.in_(
                select(events.c.message_pk).where(func.lower(events.c.recipient) == address)
            )
        )
    return conditions


def _period(search: MessageSearch, cursor: tuple[float, int] | None) -> list[ColumnElement[bool]]:
    """The date range and the cursor: ranges on ``created_at``, which every index serves."""
    conditions: list[ColumnElement[bool]] = []
    if search.created_from is not None:
        conditions.append(messages.c.created_at >= search.created_from)
    if search.created_before is not None:
        conditions.append(messages.c.created_at < search.created_before)
    if cursor is not None:
        conditions.append(_older_than(*cursor))
    return conditions


def _older_than(created_at: float, message_pk: int) -> ColumnElement[bool]:
    """Rows after this key in the listing's order. Written out, with the plain range that
    implies it beside it, rather than as a row-value comparison: both planners take the plain
    range as an index bound even without statistics."""
    return and_(
        messages.c.created_at <= created_at,
        or_(
            messages.c.created_at < created_at,
            and_(messages.c.created_at == created_at, messages.c.id < message_pk),
        ),
    )


def _subject(search: MessageSearch) -> list[ColumnElement[bool]]:
    if not search.subject:
        return []
    pattern = f"%{escaped_like(search.subject.lower())}%"
    return [func.lower(messages.c.subject).like(pattern, escape="/")]


def _newest_first(conditions: list[ColumnElement[bool]], limit: int) -> Select[Any]:
    return (
        select(*_COLUMNS)
        .where(*conditions)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .limit(limit)
    )


def _window_end(
    connection: Connection, period: list[ColumnElement[bool]]
) -> tuple[float, int] | None:
    """The key of the :data:`SCAN_WINDOW`-th message of ``period``, newest first (read off the
    ``(created_at, id)`` index alone), or ``None`` when the period holds fewer."""
    row = connection.execute(
        select(messages.c.created_at, messages.c.id)
        .where(*period)
        .order_by(messages.c.created_at.desc(), messages.c.id.desc())
        .offset(SCAN_WINDOW - 1)
        .limit(1)
    ).first()
    return None if row is None else (row.created_at, row.id)


def _plan(
    connection: Connection, search: MessageSearch, cursor: str | None, limit: int
) -> tuple[Select[Any], tuple[float, int] | None]:
    """The page's statement, and the end of its scan window when it has one."""
    after = None if cursor is None else decode_cursor(cursor)
    period = _period(search, after)
    equalities = _equalities(search)
    window = None
    if search.subject or len(equalities) > 1:
        # Filters no one index answers (a subject; two equalities, of which an index serves
        # one and the rows must be read for the other) could read the whole outbox before a
        # page fills when matches are rare. So a page examines at most SCAN_WINDOW messages;
        # if it is not full by then, its cursor continues from the window's end.
        window = _window_end(connection, period)
    if window is not None:
        created_at, message_pk = window
        period.append(messages.c.created_at >= created_at)
        period.append(
            or_(
                messages.c.created_at > created_at,
                and_(messages.c.created_at == created_at, messages.c.id >= message_pk),
            )
        )
    return _newest_first([*period, *equalities, *_subject(search)], limit), window


def search_messages(
    connection: Connection,
    search: MessageSearch,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> SearchPage:
    """One page of the messages ``search`` selects, newest first (by ``created_at``, then
    ``id``), continuing after ``cursor`` when given."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE}, not {limit}")
    # One more row than shown says whether there is a next page.
    statement, window = _plan(connection, search, cursor, limit + 1)
    rows = [_found(row) for row in connection.execute(statement)]
    shown = tuple(rows[:limit])
    if len(rows) > limit:
        return SearchPage(shown, encode_cursor(shown[-1].created_at, shown[-1].id))
    if window is not None:
        return SearchPage(shown, encode_cursor(*window), searched_back_to=window[0])
    return SearchPage(shown, None)


def search_plan(
    connection: Connection, search: MessageSearch, *, limit: int = 50, cursor: str | None = None
) -> list[str]:
    """How the database will run the page's statement: SQLite's ``EXPLAIN QUERY PLAN`` or
    PostgreSQL's ``EXPLAIN``, a line per step (for the bench and the issue's note)."""
    statement, _ = _plan(connection, search, cursor, limit + 1)
    return explain(connection, statement)


def _found(row: Any) -> FoundMessage:
    return FoundMessage(
        id=row.id,
        created_at=row.created_at,
        status=Status(row.status),
        stream=row.stream,
        sender=row.sender,
        recipients=tuple(row.recipients),
        subject=row.subject,
        notification_type=row.notification_type,
        attempts=row.attempts,
        last_error=row.last_error,
    )
