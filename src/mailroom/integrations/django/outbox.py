"""Committing Django's messages to the outbox, in one of two modes (``MAILROOM`` settings):

- **shared** (the default: ``MAILROOM["DATABASE"]``, a Django alias, and no
  ``DATABASE_URL``): the rows are inserted on Django's own connection, inside
  ``transaction.atomic(using=alias)`` — a savepoint in the caller's transaction, or a
  transaction of its own in autocommit mode. A message sent in a block that commits is
  committed with the application's data; one sent in a block that rolls back never existed.
- **separate** (``MAILROOM["DATABASE_URL"]``): the rows are inserted in that database once
  the alias's transaction commits (``transaction.on_commit``; at once outside a transaction).
  A rollback still sends nothing, but a crash between the application's commit and the
  insert loses the message, and so does an outbox that fails at that insert (logged as an
  error naming the message; the application's later ``on_commit`` hooks still run): only the
  shared mode is atomic.

Either way the message is checked and its bytes made at the call, so a bad message fails the
caller's ``send``, not a later commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections, transaction
from sqlalchemy import Connection, Engine

from mailroom.errors import IdempotencyConflictError
from mailroom.integrations.django.connection import borrowed_engine
from mailroom.integrations.django.settings import DjangoMailroomSettings
from mailroom.outbox import queries
from mailroom.outbox.database import adopt_legacy_version, check_schema, create_outbox_engine

__all__ = ["commit_rows", "forget_outboxes"]

logger = logging.getLogger(__name__)

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
        # A block an error has spoiled (an IntegrityError caught inside atomic) refuses every
        # query until it rolls back: Django's TransactionManagementError, as the ORM raises.
        # The insert below goes around the ORM, and SQLite would take it and then lose it.
        connections[config.alias].validate_no_broken_transaction()
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

    if not connections[config.alias].in_atomic_block:
        insert()  # nothing to wait for: a failure is the caller's (and its fail_silently's)
        return

    def insert_after_commit() -> None:
        try:
            insert()
        except Exception:
            # The caller's data is committed and its send() has returned: raising here would
            # only skip the application's later on_commit hooks. The message is lost; say so.
            logger.exception(
                "%d message(s) not queued after the commit (the outbox at DATABASE_URL "
                "failed) and lost: %s",
                len(rows),
                "; ".join(_describe(row) for row in rows),
            )

    # robust=True as well: nothing of ours may stop the application's later on_commit hooks.
    transaction.on_commit(insert_after_commit, using=config.alias, robust=True)


def _describe(row: dict[str, Any]) -> str:
    """A lost message as an operator finds it again: Message-ID, subject, recipients."""
    return f"Message-ID {row['message_id']} {row['subject']!r} to {', '.join(row['recipients'])}"


def forget_outboxes() -> None:
    """Drop cached engines and schema checks (settings changed, in tests)."""
    with _lock:
        for engine in _separate_engines.values():
            engine.dispose()
        _separate_engines.clear()
        _checked.clear()
