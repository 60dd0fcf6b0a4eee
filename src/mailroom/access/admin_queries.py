"""Every query admin accounts run, named and kept together (as :mod:`.queries` keeps the API
keys'). Each takes an open connection inside a transaction the caller owns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select, update

from mailroom.outbox.schema import admin_users

__all__ = [
    "all_users",
    "count_users",
    "end_sessions",
    "insert_user",
    "mark_logged_in",
    "update_password",
    "user_by_id",
    "user_by_name",
]


def insert_user(
    connection: Connection, *, username: str, password_hash: str, now: float
) -> Mapping[str, Any]:
    """Insert an account; return its row as stored. A taken name raises IntegrityError."""
    values: dict[str, Any] = {
        "username": username,
        "password_hash": password_hash,
        "created_at": now,
        "last_login_at": None,
        "disabled_at": None,
        "session_epoch": 0,
    }
    user_id = connection.execute(
        admin_users.insert().values(values).returning(admin_users.c.id)
    ).scalar_one()
    return {"id": int(user_id), **values}


def user_by_name(connection: Connection, username: str) -> Mapping[str, Any] | None:
    """The row of the account with this name, its hash included."""
    row = connection.execute(select(admin_users).where(admin_users.c.username == username)).first()
    return None if row is None else dict(row._mapping)


def user_by_id(connection: Connection, user_id: int) -> Mapping[str, Any] | None:
    """The row of the account with this id."""
    row = connection.execute(select(admin_users).where(admin_users.c.id == user_id)).first()
    return None if row is None else dict(row._mapping)


def all_users(connection: Connection) -> list[Mapping[str, Any]]:
    """Every account, oldest first."""
    rows = connection.execute(select(admin_users).order_by(admin_users.c.id))
    return [dict(row._mapping) for row in rows]


def count_users(connection: Connection) -> int:
    """How many accounts there are, disabled ones included."""
    return int(connection.execute(select(func.count()).select_from(admin_users)).scalar_one())


def update_password(connection: Connection, username: str, password_hash: str) -> bool:
    """Replace an account's hash and end its sessions; whether the account exists."""
    result = connection.execute(
        update(admin_users)
        .where(admin_users.c.username == username)
        .values(password_hash=password_hash, session_epoch=admin_users.c.session_epoch + 1)
    )
    return bool(result.rowcount)


def mark_logged_in(connection: Connection, user_id: int, now: float) -> None:
    """Record a successful sign-in."""
    connection.execute(
        update(admin_users).where(admin_users.c.id == user_id).values(last_login_at=now)
    )


def end_sessions(connection: Connection, user_id: int, epoch: int) -> None:
    """Raise the account's session epoch if it is still ``epoch``: every session made before
    stops working (a session of an older epoch, already ended, changes nothing)."""
    connection.execute(
        update(admin_users)
        .where(admin_users.c.id == user_id, admin_users.c.session_epoch == epoch)
        .values(session_epoch=epoch + 1)
    )
