"""Admin accounts: the operators who sign in to the admin pages of ``mailroom serve``.

An account keeps only a scrypt hash of its password (:mod:`.passwords`). The functions that
take a connection run inside a transaction the caller owns (``with engine.begin() as
connection``) and commit nothing by themselves; :func:`ensure_first_admin` and
:func:`check_login` take the engine, as each opens its own short transactions.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from mailroom.access import admin_queries as q
from mailroom.access.passwords import hash_password, verify_password
from mailroom.errors import MailroomError

__all__ = [
    "PASSWORD_MIN_LENGTH",
    "USERNAME_MAX_LENGTH",
    "AdminUser",
    "AdminUserError",
    "check_login",
    "check_password",
    "check_username",
    "create_user",
    "end_sessions",
    "ensure_first_admin",
    "list_users",
    "set_password",
    "user_by_id",
]

USERNAME_MAX_LENGTH = 150
PASSWORD_MIN_LENGTH = 8
_PASSWORD_MAX_LENGTH = 1024  # hashing a megabyte per guess is a cheap denial of service
_USERNAME_SHAPE = re.compile(r"[A-Za-z0-9._@+-]+", re.ASCII)
_GENERATED_PASSWORD_BYTES = 18  # 24 URL-safe characters, 144 random bits

# Verified against when no account has the name given, so an unknown name costs the same
# scrypt work as a known one with a wrong password: the answer's timing names no account.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES))


class AdminUserError(MailroomError, ValueError):
    """An account cannot be made or changed as asked; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class AdminUser:
    """One admin account as pages and commands see it: never its password hash."""

    id: int
    username: str
    created_at: float
    last_login_at: float | None
    session_epoch: int
    """What the account's sessions must carry: raised by sign-out and a new password."""


def check_username(username: str) -> str:
    """A user name, checked: 1 to 150 letters, digits and ``. _ @ + -``."""
    cleaned = username.strip()
    if not cleaned:
        raise AdminUserError("username", "give the account a name")
    if len(cleaned) > USERNAME_MAX_LENGTH:
        raise AdminUserError(
            "username", f"at most {USERNAME_MAX_LENGTH} characters (got {len(cleaned)})"
        )
    if not _USERNAME_SHAPE.fullmatch(cleaned):
        raise AdminUserError("username", "only letters, digits and . _ @ + - (no spaces)")
    return cleaned


def check_password(password: str) -> str:
    """A new password, checked for length only (the message never quotes it)."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise AdminUserError("password", f"at least {PASSWORD_MIN_LENGTH} characters")
    if len(password) > _PASSWORD_MAX_LENGTH:
        raise AdminUserError("password", f"at most {_PASSWORD_MAX_LENGTH} characters")
    return password


def create_user(connection: Connection, username: str, password: str) -> AdminUser:
    """Make an account; an :class:`AdminUserError` if the name is taken or either part is
    refused."""
    username = check_username(username)
    password_hash = hash_password(check_password(password))
    if q.user_by_name(connection, username) is not None:
        raise AdminUserError("username", f"there is already an account named {username}")
    try:
        # A savepoint: a name taken by a racing transaction leaves the caller's usable.
        with connection.begin_nested():
            row = q.insert_user(
                connection, username=username, password_hash=password_hash, now=time.time()
            )
    except IntegrityError:
        raise AdminUserError("username", f"there is already an account named {username}") from None
    return _admin_user(row)


def set_password(connection: Connection, username: str, password: str) -> None:
    """Give an account a new password, ending its sessions (whoever knew the old one may
    hold one); an :class:`AdminUserError` if there is no such account or the password is
    refused."""
    password_hash = hash_password(check_password(password))
    if not q.update_password(connection, username.strip(), password_hash):
        raise AdminUserError("username", f"there is no account named {username.strip()}")


def list_users(connection: Connection) -> list[AdminUser]:
    """Every account, oldest first."""
    return [_admin_user(row) for row in q.all_users(connection)]


def user_by_id(connection: Connection, user_id: int) -> AdminUser | None:
    """The live (not disabled) account with this id, if any: what a session names."""
    row = q.user_by_id(connection, user_id)
    if row is None or row["disabled_at"] is not None:
        return None
    return _admin_user(row)


def check_login(
    engine: Engine, username: str, password: str, now: float, *, reader: Engine | None = None
) -> AdminUser | None:
    """The account if ``username`` and ``password`` match a live one, recording the sign-in
    at ``now``; ``None`` otherwise. An unknown name, a wrong password and a disabled account
    answer alike and cost the same scrypt work.

    The account is read through ``reader`` (``engine`` if none) and the password checked
    with no transaction open: on SQLite a transaction of ``engine`` holds the database's
    write lock, which the scrypt work (a quarter of a second) must not hold up. Only a
    success writes, in a short transaction of its own."""
    with (reader or engine).connect() as connection:
        row = q.user_by_name(connection, username.strip())
    if len(password) > _PASSWORD_MAX_LENGTH:
        password = ""  # verified (and refused) at the usual cost, not a megabyte's
    stored = _DUMMY_HASH if row is None else str(row["password_hash"])
    matches = verify_password(password, stored)
    if row is None or not matches or row["disabled_at"] is not None:
        return None
    with engine.begin() as connection:
        q.mark_logged_in(connection, int(row["id"]), now)
    return _admin_user({**row, "last_login_at": now})


def end_sessions(connection: Connection, user: int, epoch: int) -> None:
    """Sign the account ``user`` out everywhere: its sessions of ``epoch`` (the current one)
    and older stop working. A session whose epoch is already stale ends nothing more."""
    q.end_sessions(connection, user, epoch)


def ensure_first_admin(engine: Engine, username: str, password: str | None) -> str | None:
    """Make the first account, named ``username``, when there is none. With ``password``
    ``None`` a random one is made and returned (for the caller to show once); otherwise, and
    when an account already exists, ``None``. A process starting at the same time as another
    makes no second account: the name is unique, and the loser finds the winner's."""
    username = check_username(username)
    generated = None
    if password is None:
        generated = secrets.token_urlsafe(_GENERATED_PASSWORD_BYTES)
        password = generated
    with engine.begin() as connection:
        if q.count_users(connection) > 0:
            return None
        try:
            create_user(connection, username, password)
        except AdminUserError as exc:
            if exc.field == "username" and q.count_users(connection) > 0:
                return None
            raise
    return generated


def _admin_user(row: Mapping[str, Any]) -> AdminUser:
    return AdminUser(
        id=int(row["id"]),
        username=row["username"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
        session_epoch=int(row["session_epoch"]),
    )
