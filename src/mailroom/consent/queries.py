"""Every query consent runs, named and kept together: the suppression list, email
preferences and the consent log.

Like :mod:`mailroom.outbox.queries`, each function takes an open connection inside a
transaction the caller owns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, false, or_, select

from mailroom.outbox.dialect import dialect_insert
from mailroom.outbox.schema import consent_log, preferences, suppressions
from mailroom.outbox.vocabulary import ConsentAction, SuppressionReason

__all__ = [
    "Suppression",
    "active_suppressions",
    "add_suppression",
    "any_suppressions",
    "consent_history",
    "email_preferences",
    "list_suppressions",
    "opted_out_page",
    "preference_sources",
    "recipient_preferences",
    "record_consent",
    "remove_suppression",
    "set_email_preference",
    "suppression_page",
    "suppression_sources",
]


# -- preferences ----------------------------------------------------------------------------


def email_preferences(
    connection: Connection, recipients: Iterable[str], notification_type: str
) -> dict[str, bool]:
    """The stored email on/off choice of each recipient key that has one for this type."""
    keys = list(dict.fromkeys(recipients))
    if not keys:
        return {}
    rows = connection.execute(
        select(preferences.c.recipient, preferences.c.email).where(
            preferences.c.notification_type == notification_type,
            preferences.c.recipient.in_(keys),
        )
    )
    return {row.recipient: bool(row.email) for row in rows}


def set_email_preference(
    connection: Connection, recipient: str, notification_type: str, *, email: bool, now: float
) -> None:
    """Store a recipient's email on/off choice for one type."""
    statement = dialect_insert(connection, preferences).values(
        recipient=recipient, notification_type=notification_type, email=email, updated_at=now
    )
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["recipient", "notification_type"],
            set_={"email": email, "updated_at": now},
        )
    )


def opted_out_page(
    connection: Connection,
    *,
    limit: int,
    search: str | None = None,
    notification_type: str | None = None,
) -> list[Mapping[str, Any]]:
    """Up to ``limit`` stored choices that turn a type off, the newest first: read in order
    off the index on (``email``, ``updated_at``). ``search``: a piece of the recipient key;
    ``notification_type``: that type only."""
    query = (
        select(preferences)
        .where(preferences.c.email == false())
        .order_by(preferences.c.updated_at.desc())
        .limit(limit)
    )
    if search:
        query = query.where(preferences.c.recipient.contains(search, autoescape=True))
    if notification_type is not None:
        query = query.where(preferences.c.notification_type == notification_type)
    return [dict(row._mapping) for row in connection.execute(query)]


def recipient_preferences(connection: Connection, recipient: str) -> list[Mapping[str, Any]]:
    """Every stored choice of one recipient key, by type name (its primary key's range)."""
    rows = connection.execute(
        select(preferences)
        .where(preferences.c.recipient == recipient)
        .order_by(preferences.c.notification_type)
    )
    return [dict(row._mapping) for row in rows]


# -- suppression list -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the suppression list."""

    address: str
    scope: str
    reason: SuppressionReason
    created_at: float
    expires_at: float | None
    note: str | None

    def active(self, now: float) -> bool:
        """Whether it still stops mail at ``now`` (an expired entry stops nothing)."""
        return self.expires_at is None or self.expires_at > now


def add_suppression(
    connection: Connection,
    address: str,
    scope: str,
    reason: SuppressionReason,
    *,
    now: float,
    expires_at: float | None = None,
    note: str | None = None,
) -> None:
    """Put (address, scope) on the list; an existing entry takes the new reason and expiry."""
    values = {"reason": reason.value, "created_at": now, "expires_at": expires_at, "note": note}
    statement = dialect_insert(connection, suppressions).values(
        address=address, scope=scope, **values
    )
    connection.execute(
        statement.on_conflict_do_update(index_elements=["address", "scope"], set_=values)
    )


def remove_suppression(connection: Connection, address: str, scope: str) -> bool:
    """Take (address, scope) off the list; whether it was there."""
    result = connection.execute(
        delete(suppressions).where(suppressions.c.address == address, suppressions.c.scope == scope)
    )
    return bool(result.rowcount)


def any_suppressions(connection: Connection) -> bool:
    """Whether the suppression list has any entry at all."""
    return connection.execute(select(suppressions.c.address).limit(1)).first() is not None


def active_suppressions(
    connection: Connection, addresses: Iterable[str], scopes: Iterable[str], now: float
) -> list[Suppression]:
    """Unexpired entries for any of ``addresses`` (normalised) in any of ``scopes``."""
    wanted = list(dict.fromkeys(addresses))
    wanted_scopes = list(dict.fromkeys(scopes))
    if not wanted or not wanted_scopes:
        return []
    rows = connection.execute(
        select(suppressions).where(
            suppressions.c.address.in_(wanted),
            suppressions.c.scope.in_(wanted_scopes),
            or_(suppressions.c.expires_at.is_(None), suppressions.c.expires_at > now),
        )
    )
    return [_suppression(dict(row._mapping)) for row in rows]


def list_suppressions(
    connection: Connection, address: str | None = None, *, now: float | None = None
) -> list[Suppression]:
    """Entries, newest first; of one address if given; unexpired at ``now`` if given."""
    query = select(suppressions).order_by(suppressions.c.created_at.desc(), suppressions.c.id)
    if address is not None:
        query = query.where(suppressions.c.address == address)
    if now is not None:
        query = query.where(
            or_(suppressions.c.expires_at.is_(None), suppressions.c.expires_at > now)
        )
    return [_suppression(dict(row._mapping)) for row in connection.execute(query)]


def suppression_page(
    connection: Connection,
    *,
    after: int | None,
    limit: int,
    search: str | None = None,
    scope: str | None = None,
) -> list[Mapping[str, Any]]:
    """Up to ``limit`` entries in id order (oldest first), from the one after id ``after``:
    keyset paging, so a page costs the same however deep it is and an entry added meanwhile
    neither shifts nor repeats the pages. ``search``: a piece of the (normalised) address;
    ``scope``: that scope only. Expired entries are included (they carry ``expires_at``)."""
    query = select(suppressions).order_by(suppressions.c.id).limit(limit)
    if after is not None:
        query = query.where(suppressions.c.id > after)
    if search:
        query = query.where(suppressions.c.address.contains(search, autoescape=True))
    if scope is not None:
        query = query.where(suppressions.c.scope == scope)
    return [dict(row._mapping) for row in connection.execute(query)]


def _suppression(row: Mapping[str, Any]) -> Suppression:
    return Suppression(
        address=row["address"],
        scope=row["scope"],
        reason=SuppressionReason(row["reason"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        note=row["note"],
    )


# -- consent log ----------------------------------------------------------------------------


def record_consent(
    connection: Connection,
    *,
    recipient: str,
    action: ConsentAction,
    scope: str,
    source: str,
    now: float,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one change of consent to the consent log (kept as evidence; never updated)."""
    connection.execute(
        consent_log.insert().values(
            at=now,
            recipient=recipient,
            action=action.value,
            scope=scope,
            source=source,
            detail=dict(detail) if detail else None,
        )
    )


def consent_history(connection: Connection, recipient: str) -> list[Mapping[str, Any]]:
    """A recipient's consent log, oldest first."""
    rows = connection.execute(
        select(consent_log).where(consent_log.c.recipient == recipient).order_by(consent_log.c.id)
    )
    return [dict(row._mapping) for row in rows]


def suppression_sources(
    connection: Connection, addresses: Iterable[str]
) -> dict[tuple[str, str], str]:
    """For each (address, scope) of ``addresses`` that the consent log shows put on the
    suppression list: the ``source`` of the latest such change (unsubscribed or suppressed).
    One query on the log's recipient index, however many addresses a page holds."""
    wanted = list(dict.fromkeys(addresses))
    if not wanted:
        return {}
    rows = connection.execute(
        select(consent_log.c.recipient, consent_log.c.scope, consent_log.c.source)
        .where(
            consent_log.c.recipient.in_(wanted),
            consent_log.c.action.in_(
                [ConsentAction.UNSUBSCRIBED.value, ConsentAction.SUPPRESSED.value]
            ),
        )
        .order_by(consent_log.c.id)
    )
    # In id order, so a later change of the same entry overwrites an earlier one.
    return {(row.recipient, row.scope): row.source for row in rows}


def preference_sources(
    connection: Connection, recipients: Iterable[str]
) -> dict[tuple[str, str], str]:
    """For each (recipient, scope) of ``recipients`` whose preference the consent log shows
    changed: the ``source`` of the latest change. One query on the log's recipient index."""
    wanted = list(dict.fromkeys(recipients))
    if not wanted:
        return {}
    rows = connection.execute(
        select(consent_log.c.recipient, consent_log.c.scope, consent_log.c.source)
        .where(
            consent_log.c.recipient.in_(wanted),
            consent_log.c.action == ConsentAction.PREFERENCE_CHANGED.value,
        )
        .order_by(consent_log.c.id)
    )
    # In id order, so a later change of the same preference overwrites an earlier one.
    return {(row.recipient, row.scope): row.source for row in rows}
