"""Every query API keys run, named and kept together (as :mod:`mailroom.consent.queries`
keeps consent's).

Each function takes an open connection inside a transaction the caller owns, so a caller can
put a look-up and its ``last_used_at`` write in one commit, or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, update

from mailroom.outbox.schema import api_keys

__all__ = [
    "all_keys",
    "insert_key",
    "key_by_id",
    "key_by_prefix",
    "mark_revoked",
    "mark_used",
]


def insert_key(
    connection: Connection, *, name: str, prefix: str, key_hash: str, scope: str, now: float
) -> Mapping[str, Any]:
    """Insert a key row; return it as stored."""
    values: dict[str, Any] = {
        "name": name,
        "prefix": prefix,
        "key_hash": key_hash,
        "scope": scope,
        "created_at": now,
        "last_used_at": None,
        "revoked_at": None,
    }
    key_id = connection.execute(
        api_keys.insert().values(values).returning(api_keys.c.id)
    ).scalar_one()
    return {"id": int(key_id), **values}


# Built once: every API request runs it, and building the statement anew (and its cache
# key) cost more than the database spent answering it.
_BY_PREFIX = select(api_keys).where(api_keys.c.prefix == bindparam("prefix"))


def key_by_prefix(connection: Connection, prefix: str) -> Mapping[str, Any] | None:
    """The row of the key with this prefix, its hash included (only :func:`authenticate`
    needs that)."""
    row = connection.execute(_BY_PREFIX, {"prefix": prefix}).first()
    return None if row is None else dict(row._mapping)


def key_by_id(connection: Connection, key_id: int) -> Mapping[str, Any] | None:
    """The row of the key with this id."""
    row = connection.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
    return None if row is None else dict(row._mapping)


def all_keys(connection: Connection) -> list[Mapping[str, Any]]:
    """Every key, oldest first."""
    rows = connection.execute(select(api_keys).order_by(api_keys.c.id))
    return [dict(row._mapping) for row in rows]


def mark_revoked(connection: Connection, key_id: int, now: float) -> None:
    """Revoke a key; a key already revoked keeps the time it was first revoked."""
    connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def mark_used(connection: Connection, key_id: int, now: float, *, older_than: float) -> bool:
    """Set ``last_used_at`` to ``now`` unless it is already at or after ``older_than``;
    whether a row changed. The condition is in the statement, so requests racing on one key
    write at most once between them."""
    result = connection.execute(
        update(api_keys)
        .where(
            api_keys.c.id == key_id,
            or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < older_than),
        )
        .values(last_used_at=now)
    )
    return bool(result.rowcount)
