"""API keys: made once, shown once, stored only as a digest, checked on every API request.

A key reads ``mrk_<prefix>_<secret>``. The prefix (12 letters and digits) is public: it
names the key in listings and finds its row, so a check is one indexed look-up. The secret
is 32 random bytes from :mod:`secrets`, URL-safe base64. The database keeps only the sha256
of the whole key.

A fast hash is right here, unlike for passwords: a key carries 256 random bits, so nobody
can guess it from its digest however fast they hash, and a slow hash (bcrypt, scrypt) would
only cost every API request tens of milliseconds of CPU.

Every function takes an open connection inside a transaction the caller owns (``with
engine.begin() as connection``), like the query modules: none commits by itself.
:func:`authenticate` never writes; the web layer calls :func:`touch_api_key` after a key is
accepted, which writes ``last_used_at`` at most once a minute per key, so most requests
commit nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from mailroom.access import queries as q
from mailroom.errors import MailroomError
from mailroom.outbox.vocabulary import ApiKeyScope

__all__ = [
    "KEY_PREFIX",
    "TOUCH_INTERVAL",
    "ApiKey",
    "ApiKeyError",
    "authenticate",
    "check_name",
    "create_api_key",
    "list_api_keys",
    "needs_touch",
    "revoke_api_key",
    "touch_api_key",
]

KEY_PREFIX = "mrk"
"""What every key starts with (then ``_``), so a leaked key is recognisable by scanners."""

TOUCH_INTERVAL = 60.0
"""Seconds: ``last_used_at`` is written at most this often per key."""

NAME_MAX = 100
_PREFIX_LENGTH = 12
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_SECRET_BYTES = 32
_KEY_SHAPE = re.compile(
    rf"{KEY_PREFIX}_(?P<prefix>[A-Za-z0-9]{{{_PREFIX_LENGTH}}})_[A-Za-z0-9_-]{{43}}",
    re.ASCII,
)
_DUMMY_DIGEST = hashlib.sha256(b"no key has this digest").hexdigest()
"""Compared against when no key has the presented prefix, so an unknown prefix costs the
same work as a known one with a wrong secret."""


class ApiKeyError(MailroomError, ValueError):
    """An API key cannot be made as asked; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as anyone may see it: never its secret, nor its digest."""

    id: int
    name: str
    prefix: str
    scope: ApiKeyScope
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def revoked(self) -> bool:
        """Whether the key was revoked (it then authenticates nothing)."""
        return self.revoked_at is not None


def create_api_key(
    connection: Connection, *, name: str, scope: ApiKeyScope, now: float
) -> tuple[ApiKey, str]:
    """Make a key; return its row and the key itself, which is not stored and cannot be
    shown again."""
    name = check_name(name)
    scope = ApiKeyScope(scope)
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    row = q.insert_key(
        connection,
        name=name,
        prefix=prefix,
        key_hash=_digest(plaintext),
        scope=scope.value,
        now=now,
    )
    return _api_key(row), plaintext


def authenticate(connection: Connection, presented: str, now: float) -> ApiKey | None:
    """The key ``presented`` is, if it is a live one; ``None`` if it is malformed, unknown or
    revoked (the caller answers all three alike). Writes nothing: see :func:`touch_api_key`.

    ``now`` is taken for keys that may later expire; today a key lives until revoked.
    """
    del now
    match = _KEY_SHAPE.fullmatch(presented)
    if match is None:
        return None  # the shape is public; rejecting it early reveals nothing
    digest = _digest(presented)
    row = q.key_by_prefix(connection, match["prefix"])
    stored = _DUMMY_DIGEST if row is None else str(row["key_hash"])
    if not hmac.compare_digest(digest, stored) or row is None:
        return None
    if row["revoked_at"] is not None:
        return None
    return _api_key(row)


def needs_touch(key: ApiKey, now: float) -> bool:
    """Whether :func:`touch_api_key` would write: the last use recorded is older than
    :data:`TOUCH_INTERVAL`. Lets a caller skip opening a write transaction for nothing."""
    return key.last_used_at is None or key.last_used_at < now - TOUCH_INTERVAL


def touch_api_key(connection: Connection, key: ApiKey, now: float) -> bool:
    """Record that ``key`` was used at ``now``, unless that was recorded less than
    :data:`TOUCH_INTERVAL` ago; whether it wrote. The caller commits (a request that writes
    nothing else then commits only about once a minute per key)."""
    older_than = now - TOUCH_INTERVAL
    if not needs_touch(key, now):
        return False
    return q.mark_used(connection, key.id, now, older_than=older_than)


def list_api_keys(connection: Connection) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return [_api_key(row) for row in q.all_keys(connection)]


def revoke_api_key(connection: Connection, ident: str, now: float) -> ApiKey | None:
    """Revoke the key whose id or prefix is ``ident``; the key as it now is, or ``None`` if
    there is no such key. Revoking a revoked key changes nothing."""
    row = _find(connection, ident.strip())
    if row is None:
        return None
    key = _api_key(row)
    if key.revoked_at is not None:
        return key
    q.mark_revoked(connection, key.id, now)
    return replace(key, revoked_at=now)


def check_name(name: str) -> str:
    """A key's name, checked: 1 to 100 printable characters (spaces inside are fine)."""
    cleaned = name.strip()
    if not cleaned:
        raise ApiKeyError("name", "give the key a name, to tell it apart in listings")
    if len(cleaned) > NAME_MAX:
        raise ApiKeyError("name", f"at most {NAME_MAX} characters (got {len(cleaned)})")
    if not cleaned.isprintable():
        raise ApiKeyError("name", "only printable characters (no control characters)")
    return cleaned


def _find(connection: Connection, ident: str) -> Mapping[str, Any] | None:
    if ident.isascii() and ident.isdigit():
        row = q.key_by_id(connection, int(ident))
        if row is not None:
            return row
    if ident.startswith(f"{KEY_PREFIX}_"):
        ident = ident.split("_", 2)[1]  # a key or "mrk_<prefix>" pasted whole: its prefix
    return q.key_by_prefix(connection, ident)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _api_key(row: Mapping[str, Any]) -> ApiKey:
    return ApiKey(
        id=int(row["id"]),
        name=row["name"],
        prefix=row["prefix"],
        scope=ApiKeyScope(row["scope"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
