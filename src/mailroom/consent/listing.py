"""The suppression list as people page through it: ``mailroom suppressions list|export`` and
the API's suppression listing both read it here.

Paging is keyset (by entry id), not offset: each page is one indexed range scan however deep
it is, and an entry added or removed between two pages neither repeats nor skips another.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from mailroom.consent import queries as q
from mailroom.consent.scopes import check_scope
from mailroom.errors import MessageError
from mailroom.outbox.vocabulary import SuppressionReason

__all__ = [
    "MAX_PAGE",
    "SuppressionEntry",
    "all_suppressions",
    "entry_sources",
    "list_suppressions",
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
