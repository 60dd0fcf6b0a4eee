"""The suppression list as people page through it: ``mailroom suppressions list|export`` and
the API's suppression listing both read it here. Beside it, the opt-outs of one notification
type (a preference turned off, by an unsubscribe link, the preference centre or the API),
which stop that type's mail without being entries of the list, and one recipient's choices.

Paging is keyset (by entry id), not offset: each page is one indexed range scan however deep
it is, and an entry added or removed between two pages neither repeats nor skips another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from mailroom.consent import queries as q
from mailroom.consent.scopes import check_scope, type_scope
from mailroom.errors import MessageError
from mailroom.outbox.vocabulary import SuppressionReason

__all__ = [
    "MAX_PAGE",
    "SuppressionEntry",
    "TypeChoice",
    "all_suppressions",
    "entry_sources",
    "list_suppressions",
    "recent_opt_outs",
    "recipient_choices",
]

MAX_PAGE = 1000
"""The most entries one page may hold."""


@dataclass(frozen=True, slots=True)
class SuppressionEntry:
    """One entry of the suppression list, with the id that pages are cut at."""

    id: int
    address: str
    scope: str
    reason: SuppressionReason
    created_at: float
    expires_at: float | None
    note: str | None

    def active(self, now: float) -> bool:
        """Whether it still stops mail at ``now`` (an expired entry stops nothing)."""
        return self.expires_at is None or self.expires_at > now


def list_suppressions(
    connection: Connection,
    *,
    after: int | None,
    limit: int,
    search: str | None,
    scope: str | None,
) -> list[SuppressionEntry]:
    """Up to ``limit`` (1 to :data:`MAX_PAGE`) entries, oldest first, after the entry whose
    id is ``after`` (``None``: from the start). The next page is ``after=page[-1].id``; a
    page shorter than ``limit`` is the last.

    ``search``: entries whose address contains it (case does not matter; addresses are
    stored lower-cased). ``scope``: entries of that scope only (checked: ``all``,
    ``type:<name>``, ``list:<name>``). Raises :class:`~mailroom.errors.MessageError` naming
    ``limit``, ``after`` or ``scope`` when one is out of range.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise MessageError("limit", f"must be 1 to {MAX_PAGE} (got {limit})")
    if after is not None and after < 0:
        raise MessageError("after", f"must be the id of an entry, 0 or more (got {after})")
    rows = q.suppression_page(
        connection,
        after=after,
        limit=limit,
        search=search.strip().lower() if search else None,
        scope=check_scope(scope) if scope is not None else None,
    )
    return [
        SuppressionEntry(
            id=int(row["id"]),
            address=row["address"],
            scope=row["scope"],
            reason=SuppressionReason(row["reason"]),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            note=row["note"],
        )
        for row in rows
    ]


def all_suppressions(
    connection: Connection, *, search: str | None = None, scope: str | None = None
) -> Iterator[SuppressionEntry]:
    """Every entry, oldest first, read a page at a time (memory stays bounded however long
    the list is)."""
    after: int | None = None
    while True:
        page = list_suppressions(
            connection, after=after, limit=MAX_PAGE, search=search, scope=scope
        )
        yield from page
        if len(page) < MAX_PAGE:
            return
        after = page[-1].id


def entry_sources(
    connection: Connection, entries: Sequence[SuppressionEntry]
) -> dict[int, str | None]:
    """Where each entry came from, by entry id: the consent log's ``source`` of the change
    that put it there (``link``, ``one_click``, ``mailto``, ``preferences``, ``cli``,
    ``api``, ``admin``, or a bounce processor's), ``None`` when the log has no such line."""
    found = q.suppression_sources(connection, [entry.address for entry in entries])
    return {entry.id: found.get((entry.address, entry.scope)) for entry in entries}


@dataclass(frozen=True, slots=True)
class TypeChoice:
    """A recipient's stored choice for one notification type, and what made it."""

    recipient: str
    """The application's user key, or the normalised address."""
    notification_type: str
    email: bool
    updated_at: float
    source: str | None
    """The consent log's ``source`` of the latest change (``link``, ``one_click``,
    ``preferences``, ``api``...); ``None`` when the log has none under this recipient (a
    choice kept under a user key is logged under the address)."""


def recent_opt_outs(
    connection: Connection, *, limit: int, search: str | None = None, scope: str | None = None
) -> list[TypeChoice]:
    """Up to ``limit`` (1 to :data:`MAX_PAGE`) recipients' choices that turned a type off,
    the newest first. ``search``: those whose recipient contains it (case does not matter);
    ``scope``: checked, and for ``type:<name>`` that type only (an ``all`` or ``list:``
    scope is no type: nothing)."""
    if not 1 <= limit <= MAX_PAGE:
        raise MessageError("limit", f"must be 1 to {MAX_PAGE} (got {limit})")
    notification_type = None
    if scope is not None:
        checked = check_scope(scope)
        if not checked.startswith("type:"):
            return []
        notification_type = checked.removeprefix("type:")
    rows = q.opted_out_page(
        connection,
        limit=limit,
        search=search.strip().lower() if search else None,
        notification_type=notification_type,
    )
    return _with_sources(connection, rows)


def recipient_choices(connection: Connection, recipient: str) -> list[TypeChoice]:
    """Every stored choice of ``recipient`` (a user key or a normalised address), by type."""
    return _with_sources(connection, q.recipient_preferences(connection, recipient))


def _with_sources(connection: Connection, rows: Sequence[Mapping[str, Any]]) -> list[TypeChoice]:
    sources = q.preference_sources(connection, [row["recipient"] for row in rows])
    return [
        TypeChoice(
            recipient=row["recipient"],
            notification_type=row["notification_type"],
            email=bool(row["email"]),
            updated_at=row["updated_at"],
            source=sources.get((row["recipient"], type_scope(row["notification_type"]))),
        )
        for row in rows
    ]
