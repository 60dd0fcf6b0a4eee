"""Committing Django's messages to the outbox, in one of two modes (``MAILROOM`` settings):

- **shared** (the default: ``MAILROOM["DATABASE"]``, a Django alias, and no
  ``DATABASE_URL``): the rows are inserted on Django's own connection, inside
  ``transaction.atomic(using=alias)`` — a savepoint in the caller's transaction, or a
  transaction of its own in autocommit mode. A message sent in a block that commits is
  committed with the application's data; one sent in a block that rolls back never existed.
- **separate** (``MAILROOM["DATABASE_URL"]``): the rows are inserted in that database once
  the alias's transaction commits (``transaction.on_commit``; at once outside a transaction).
  A rollback still sends nothing, but a crash between the application's commit and the
  insert loses the message: only the shared mode is atomic.

Either way the message is checked and its bytes made at the call, so a bad message fails the
caller's ``send``, not a later commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import transaction
from sqlalchemy import Connection, Engine

from mailroom.errors import IdempotencyConflictError
from mailroom.integrations.django.connection import borrowed_engine
from mailroom.integrations.django.settings import DjangoMailroomSettings
from mailroom.outbox import queries
from mailroom.outbox.database import adopt_legacy_version, check_schema, create_outbox_engine

__all__ = ["commit_rows", "forget_outboxes"]

_separate_engines: dict[str, Engine] = {}
_checked: set[str] = set()
_lock = threading.Lock()


def _separate_engine(url: str) -> Engine:
    with _lock:
        engine = _separate_engines.get(url)
        if engine is None:
            engine = create_outbox_engine(url, durable=True)
            _separate_engines[url] = engine
        return engine


def _check_once(engine: Engine, key: str) -> None:
    """The schema is the one this version needs (``manage.py mailroom_migrate``)."""
    if key in _checked:
        return
    adopt_legacy_version(engine)
    check_schema(engine)
    _checked.add(key)


def _insert(connection: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert; a row whose idempotency key is taken gets the message that holds it, or an
    :class:`IdempotencyConflictError` when that message has other content."""
    found = queries.insert_messages(connection, rows)
    taken = [row["idempotency_key"] for row, pk in zip(rows, found, strict=True) if pk is None]
    existing = queries.find_by_idempotency_keys(connection, taken)
    ids: list[int] = []
    for row, pk in zip(rows, found, strict=True):
        if pk is not None:
            ids.append(pk)
            continue
        key = row["idempotency_key"]
        existing_pk, existing_print = existing[key]
        if existing_print not in (None, row["idempotency_fingerprint"]):
            raise IdempotencyConflictError(key, existing_pk)
        ids.append(existing_pk)
    return ids


def commit_rows(
    config: DjangoMailroomSettings,
    rows: Sequence[dict[str, Any]],
    done: Callable[[list[int]], None],
) -> None:
    """Commit ``rows`` as the mode says; ``done(ids)`` once they are in (in the shared mode
    at once, inside the caller's transaction; in the separate mode after its commit)."""
    if not rows:
        return
    if config.shared:
        engine = borrowed_engine(config.alias)
        with transaction.atomic(using=config.alias):
            _check_once(engine, f"alias:{config.alias}")
            with engine.connect() as connection:
                ids = _insert(connection, rows)
        done(ids)
        return
    url = config.settings.DATABASE_URL
    engine = _separate_engine(url)

    def insert() -> None:
        _check_once(engine, url)
        with engine.begin() as connection:
            ids = _insert(connection, rows)
        done(ids)

    # robust=False: an insert that fails after the commit raises in the committing code,
    # where it shows, rather than being logged and lost.
    transaction.on_commit(insert, using=config.alias)


def forget_outboxes() -> None:
    """Drop cached engines and schema checks (settings changed, in tests)."""
    with _lock:
        for engine in _separate_engines.values():
            engine.dispose()
        _separate_engines.clear()
        _checked.clear()
