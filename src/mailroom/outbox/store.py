"""The outbox as callers see it: validate, compose, commit, and hand back the id.

A message is committed before :meth:`Outbox.send` returns; from then on a worker will deliver
it, whatever happens to the calling process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.errors import MessageError
from mailroom.message import Message, build_envelope
from mailroom.outbox import admin, queries
from mailroom.outbox.database import (
    adopt_legacy_version,
    check_schema,
    create_outbox_engine,
    holds_no_tables,
    upgrade,
)
from mailroom.outbox.schema import STREAM_PRIORITIES, Status

__all__ = ["Outbox"]

_STREAM_NAME_MAX = 64


def _epoch(when: datetime | None, now: float) -> float:
    if when is None:
        return now
    if when.tzinfo is None:
        raise MessageError("send_at", "must be timezone-aware (e.g. datetime.now(UTC) + delta)")
    return when.timestamp()


class Outbox:
    """The durable outbox on ``DATABASE_URL``.

    In a SQLite database that holds no tables yet (the embedded default, a new file) the
    tables are created on first use, so it needs no setup. Any other database (PostgreSQL, or
    a file that holds an application's tables), or an older schema, needs ``mailroom db
    upgrade``: Mailroom never creates tables silently in a database it may not own.
    """

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_outbox_engine(settings.DATABASE_URL, durable=True)
        self._ready = False

    def ensure_schema(self) -> None:
        """Create the tables of an empty SQLite database; otherwise insist on the current one."""
        if self._ready:
            return
        adopt_legacy_version(self.engine)
        if self.engine.dialect.name == "sqlite" and holds_no_tables(self.engine):
            upgrade(self.engine)
        check_schema(self.engine)
        self._ready = True

    def _row(
        self,
        message: Message,
        *,
        stream: str,
        due_at: float,
        now: float,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        envelope = build_envelope(
            message,
            default_from=self.settings.DEFAULT_FROM_EMAIL,
            max_size=self.settings.EMAIL_MAX_MESSAGE_SIZE,
        )
        return {
            "message_id": envelope.message_id,
            "stream": stream,
            "priority": STREAM_PRIORITIES.get(stream, 50),
            "status": (Status.SCHEDULED if due_at > now else Status.QUEUED).value,
            "sender": envelope.sender,
            "recipients": list(envelope.recipients),
            "subject": message.subject.strip()[:500],
            "data": envelope.data,
            "smtputf8": envelope.smtputf8,
            "idempotency_key": idempotency_key,
            "extra": dict(message.metadata) or None,
            "created_at": now,
            "due_at": due_at,
            "updated_at": now,
            "attempts": 0,
        }

    def send(
        self,
        message: Message | None = None,
        /,
        *,
        stream: str = "transactional",
        send_at: datetime | None = None,
        idempotency_key: str | None = None,
        **fields: Any,
    ) -> int:
        """Validate, compose and commit one message; return its id.

        Pass a :class:`~mailroom.message.Message`, or its fields (``to=``, ``subject=``,
        ``text=``...). The same ``idempotency_key`` always returns the same id and never makes
        a second message, also when two callers race.
        """
        if message is None:
            message = Message(**fields)
        elif fields:
            raise TypeError("pass either a Message or its fields, not both")
        keys = [idempotency_key] if idempotency_key is not None else None
        return self.send_many([message], stream=stream, send_at=send_at, idempotency_keys=keys)[0]

    def send_many(
        self,
        batch: Iterable[Message],
        *,
        stream: str = "transactional",
        send_at: datetime | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Validate and compose every message, then commit them all in one transaction.

        Nothing is committed if any message is invalid: the error names it by position.
        """
        if not stream or len(stream) > _STREAM_NAME_MAX:
            raise MessageError("stream", f"must be 1 to {_STREAM_NAME_MAX} characters")
        items = list(batch)
        keys = list(idempotency_keys) if idempotency_keys is not None else [None] * len(items)
        if len(keys) != len(items):
            raise ValueError("idempotency_keys must have one entry per message")
        now = time.time()
        due_at = _epoch(send_at, now)
        rows = []
        for position, (message, key) in enumerate(zip(items, keys, strict=True)):
            try:
                rows.append(
                    self._row(message, stream=stream, due_at=due_at, now=now, idempotency_key=key)
                )
            except MessageError as exc:
                if len(items) == 1:
                    raise
                raise type(exc)(f"message {position}: {exc.field}", str(exc)) from exc
        self.ensure_schema()
        with self.engine.begin() as connection:
            ids = queries.insert_messages(connection, rows)
            missing = [key for key, found in zip(keys, ids, strict=True) if found is None and key]
            existing = queries.find_by_idempotency_keys(connection, missing)
        return [
            found if found is not None else existing[key]  # type: ignore[index]
            for key, found in zip(keys, ids, strict=True)
        ]

    def get(self, message_pk: int) -> admin.MessageDetail | None:
        """Everything stored about one message, or ``None``."""
        self.ensure_schema()
        with self.engine.connect() as connection:
            return admin.message_detail(connection, message_pk)

    def counts(self) -> dict[str, int]:
        self.ensure_schema()
        with self.engine.connect() as connection:
            return queries.counts_by_status(connection)

    def dispose(self) -> None:
        self.engine.dispose()
