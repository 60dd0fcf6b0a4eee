"""A SQLAlchemy engine that runs on Django's own database connection, so that Mailroom's
inserts are part of the transaction Django has open (and commit or roll back with it).

Each checkout hands SQLAlchemy a thin proxy of the calling thread's Django connection
(``connections[alias].connection``) whose ``commit``, ``rollback`` and ``close`` do nothing:
the transaction and the connection stay Django's. The proxy also refuses the changes a dialect
makes to a connection it believes its own (SQLite's ``regexp`` function would replace Django's;
psycopg's notice handler would pile up, one per checkout). Callers run inside
``transaction.atomic(using=alias)``, so there is always a transaction, or a savepoint in the
caller's, for the statements to join.

None of Mailroom's own engine settings apply here (SQLite's ``BEGIN IMMEDIATE`` hooks, busy
timeouts, PostgreSQL statement timeouts): the connection is configured by Django's settings.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from mailroom.integrations.django.settings import postgres_driver

__all__ = ["borrowed_engine"]

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


class _BorrowedConnection:
    """Django's DBAPI connection, as SQLAlchemy may use it but not end it."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def commit(self) -> None:
        """Django commits (at the end of the outermost ``atomic`` block)."""

    def rollback(self) -> None:
        """Django rolls back (``atomic`` rolls back its savepoint when an error leaves it)."""

    def close(self) -> None:
        """The connection is Django's to close (``CONN_MAX_AGE``, end of request)."""

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        """SQLite: keep Django's functions (its ``REGEXP``) as Django registered them."""

    def add_notice_handler(self, *args: Any, **kwargs: Any) -> None:
        """psycopg: one handler per checkout would accumulate on a long-lived connection."""


def _dialect_url(alias: str) -> str:
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        return "sqlite://"
    if vendor == "postgresql":
        return f"postgresql+{postgres_driver()}://"
    raise ValueError(f"the outbox cannot share a {vendor} database (alias {alias!r})")


def borrowed_engine(alias: str) -> Engine:
    """The engine for ``alias`` (one per alias and process; connections are per thread)."""
    with _lock:
        engine = _engines.get(alias)
        if engine is None:

            def creator() -> _BorrowedConnection:
                wrapper = connections[alias]
                wrapper.ensure_connection()
                return _BorrowedConnection(wrapper.connection)

            url = _dialect_url(alias)
            # hstore: SQLAlchemy would look its type up with psycopg's TypeInfo, which wants
            # a psycopg Connection, not the proxy (and the outbox has no hstore column).
            options: dict[str, Any] = (
                {"use_native_hstore": False} if url.startswith("postgresql") else {}
            )
            engine = create_engine(url, creator=creator, poolclass=NullPool, **options)
            _engines[alias] = engine
        return engine


def forget_engines() -> None:
    """Drop the engines (Django's ``DATABASES`` changed, in tests)."""
    with _lock:
        _engines.clear()
