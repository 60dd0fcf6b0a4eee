"""The outbox as callers see it: validate, compose, commit, and hand back the id.

A message is committed before :meth:`Outbox.send` returns; from then on a worker will deliver
it, whatever happens to the calling process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from mailroom.config import Settings
from mailroom.errors import BatchError, IdempotencyConflictError, MessageError
from mailroom.message import Message, build_envelope, content_fingerprint
from mailroom.outbox import lease_queries, operations, operator_queries, queries
from mailroom.outbox.batch_items import (
    BatchItem,
    check_key,
    check_stream,
    due_epoch,
    message_from_fields,
    stored_links,
    stored_metadata,
)
from mailroom.outbox.database import (
    adopt_legacy_version,
    check_schema,
    create_outbox_engine,
    holds_no_tables,
    upgrade,
)
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.message_insert import PreparedInsert, prepare_insert
from mailroom.outbox.vocabulary import STREAM_PRIORITIES, ConsentFacts, Status

__all__ = ["BatchItem", "Outbox"]


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
        fingerprint: str | None = None,
        consent: ConsentFacts | None = None,
        tracked_links: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        envelope = build_envelope(
            message,
            default_from=self.settings.DEFAULT_FROM_EMAIL,
            max_size=self.settings.EMAIL_MAX_MESSAGE_SIZE,
        )
        extra = stored_metadata(message.metadata)
        if idempotency_key is not None:
            check_key(idempotency_key)
            fingerprint = fingerprint or content_fingerprint(message, stream=stream)
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
            "idempotency_fingerprint": fingerprint if idempotency_key is not None else None,
            "extra": extra,
            "consent_scopes": list(consent.scopes) if consent is not None else None,
            "consent_required": consent.required if consent is not None else None,
            "created_at": now,
            "due_at": due_at,
            "updated_at": now,
            "attempts": 0,
            "tracked_links": stored_links(tracked_links),
        }

    def message_row(
        self,
        message: Message,
        *,
        stream: str,
        now: float,
        consent: ConsentFacts | None = None,
        tracked_links: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """The row :meth:`send` would insert for ``message``, due ``now``, for a caller that
        inserts it (:func:`mailroom.outbox.queries.insert_messages`) in a transaction of its
        own with rows of its own (a campaign's ledger). :class:`MessageError` if it cannot be
        built."""
        check_stream(stream)
        return self._row(
            message,
            stream=stream,
            due_at=now,
            now=now,
            idempotency_key=None,
            consent=consent,
            tracked_links=tracked_links,
        )

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
        ``text=``...). The same ``idempotency_key`` with the same content always returns the
        same id and never makes a second message, also when two callers race; with different
        content it raises :class:`~mailroom.errors.IdempotencyConflictError`.
        """
        if message is None:
            message = message_from_fields(fields)
        elif fields:
            raise MessageError(
                "message", "pass either a Message or its fields (to=, subject=...), not both"
            )
        keys = [idempotency_key] if idempotency_key is not None else None
        return self.send_many([message], stream=stream, send_at=send_at, idempotency_keys=keys)[0]

    def send_many(
        self,
        batch: Iterable[Message],
        *,
        stream: str = "transactional",
        send_at: datetime | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
        consent: ConsentFacts | None = None,
        tracked_links: Sequence[Sequence[str] | None] | None = None,
    ) -> list[int]:
        """Validate and compose every message, then commit them all in one transaction.

        Nothing is committed if any message is invalid: the error names it by position.
        ``consent``: the facts the check at claim uses for every message of the batch (see
        :class:`~mailroom.outbox.vocabulary.ConsentFacts`); without them each is checked against
        ``all`` as required mail. ``tracked_links``: as for :meth:`send_each`.
        """
        results = self._commit(
            batch,
            stream=stream,
            send_at=send_at,
            keys=idempotency_keys,
            consent=consent,
            tracked_links=tracked_links,
            skip_invalid=False,
        )
        return [result for result in results if isinstance(result, int)]

    def send_each(
        self,
        batch: Iterable[Message],
        *,
        stream: str = "transactional",
        send_at: datetime | None = None,
        idempotency_keys: Sequence[str | None] | None = None,
        fingerprints: Sequence[str | None] | None = None,
        consent: ConsentFacts | None = None,
        tracked_links: Sequence[Sequence[str] | None] | None = None,
    ) -> list[int | MessageError]:
        """Like :meth:`send_many`, but a message that cannot be built, or whose key names
        other content, comes back as its :class:`MessageError` instead of failing the rest;
        the others are committed together. ``fingerprints`` replace the digest of each
        message's content as what its key is compared on (``notify`` passes one of its own
        request, since its From and unsubscribe link differ on every call). ``tracked_links``:
        per message, the URLs click tracking rewrote in it, by link index (see
        :func:`mailroom.compose.tracking.apply_tracking`), kept for the click endpoint."""
        return self._commit(
            batch,
            stream=stream,
            send_at=send_at,
            keys=idempotency_keys,
            fingerprints=fingerprints,
            consent=consent,
            tracked_links=tracked_links,
            skip_invalid=True,
        )

    def send_batch(self, items: Sequence[BatchItem]) -> list[int]:
        """Commit every item, each with its own stream, send time and key, in one transaction,
        or none of them: a :class:`~mailroom.errors.BatchError` then names every item at
        fault by its position (what ``POST /api/v1/messages/batch`` answers), not only the
        first one."""
        results = self._commit_items(items, consent=None, mode="collect")
        return [result for result in results if isinstance(result, int)]

    def send_batch_each(self, items: Sequence[BatchItem]) -> list[int | MessageError]:
        """Like :meth:`send_batch`, but an item at fault comes back as its
        :class:`MessageError` and the others are committed together (what a group commit of
        unrelated single sends needs: one caller's mistake is not another's)."""
        return self._commit_items(items, consent=None, mode="skip")

    def _commit(
        self,
        batch: Iterable[Message],
        *,
        stream: str,
        send_at: datetime | None,
        keys: Sequence[str | None] | None,
        fingerprints: Sequence[str | None] | None = None,
        consent: ConsentFacts | None = None,
        tracked_links: Sequence[Sequence[str] | None] | None = None,
        skip_invalid: bool,
    ) -> list[int | MessageError]:
        check_stream(stream)
        items = list(batch)
        keys = list(keys) if keys is not None else [None] * len(items)
        prints = list(fingerprints) if fingerprints is not None else [None] * len(items)
        links = list(tracked_links) if tracked_links is not None else [None] * len(items)
        if len(keys) != len(items) or len(prints) != len(items) or len(links) != len(items):
            raise ValueError(
                "idempotency_keys, fingerprints and tracked_links need one entry per message"
            )
        return self._commit_items(
            [
                BatchItem(message, stream, send_at, key, tracked, fingerprint)
                for message, key, fingerprint, tracked in zip(
                    items, keys, prints, links, strict=True
                )
            ],
            consent=consent,
            mode="skip" if skip_invalid else "raise",
        )

    def _commit_items(
        self, items: Sequence[BatchItem], *, consent: ConsentFacts | None, mode: str
    ) -> list[int | MessageError]:
        """``mode``: ``raise`` the first error (naming its position in a batch), ``skip`` the
        items at fault (they come back as their errors), or ``collect`` every error into one
        :class:`BatchError`. Nothing is committed unless ``mode`` is ``skip`` or no item is
        at fault."""
        now = time.time()
        rows: list[dict[str, Any]] = []
        results: list[int | MessageError | None] = []
        collected: dict[int, MessageError] = {}
        for position, item in enumerate(items):
            try:
                check_stream(item.stream)
                rows.append(
                    self._row(
                        item.message,
                        stream=item.stream,
                        due_at=due_epoch(item.send_at, now),
                        now=now,
                        idempotency_key=item.idempotency_key,
                        fingerprint=item.fingerprint,
                        consent=consent,
                        tracked_links=item.tracked_links,
                    )
                )
                results.append(None)
            except MessageError as exc:
                if mode == "skip":
                    results.append(exc)
                    continue
                if mode == "collect":
                    collected[position] = exc
                    continue
                if len(items) == 1:
                    raise
                raise type(exc)(f"message {position}: {exc.field}", str(exc)) from exc
        if collected:
            raise BatchError(collected)
        self.ensure_schema()
        # Built before the write lock is taken, for the time the lock is held to be the
        # database's alone (mailroom.outbox.message_insert).
        prepared = (
            None
            if any(row["idempotency_key"] for row in rows)
            else prepare_insert(rows, self.engine.dialect)
        )
        with self.engine.begin() as connection:
            outcomes = _insert(connection, rows, mode, prepared)
        done = iter(outcomes)
        return [next(done) if result is None else result for result in results]

    def start_send_now(
        self, message: Message, *, stream: str, lease_token: str, lease_until: float
    ) -> ClaimedMessage:
        """Commit one message already leased to the caller, who sends it at once instead of
        leaving it to a worker (the test email): it gets an id, a ``queued`` event and every
        later record as a worker's send would. No worker can claim it in between; if the
        caller dies before writing the outcome, the lease runs out and a worker sends it."""
        check_stream(stream)
        now = time.time()
        row = self._row(message, stream=stream, due_at=now, now=now, idempotency_key=None)
        self.ensure_schema()
        with self.engine.begin() as connection:
            (message_pk,) = queries.insert_messages(connection, [row])
            assert message_pk is not None  # noqa: S101 - no idempotency key: always inserted
            lease_queries.lease(
                connection, message_pk, lease_token=lease_token, until=lease_until, now=now
            )
        return ClaimedMessage(
            message_pk,
            row["message_id"],
            stream,
            row["sender"],
            tuple(row["recipients"]),
            row["data"],
            row["smtputf8"],
            0,
            now,
            lease_until,
            None,
        )

    def get(self, message_pk: int) -> operations.MessageDetail | None:
        """Everything stored about one message, or ``None``."""
        self.ensure_schema()
        with self.engine.connect() as connection:
            return operations.message_detail(connection, message_pk)

    def counts(self) -> dict[str, int]:
        self.ensure_schema()
        with self.engine.connect() as connection:
            return operator_queries.counts_by_status(connection)

    def dispose(self) -> None:
        self.engine.dispose()


def _insert(
    connection: Connection,
    rows: Sequence[dict[str, Any]],
    mode: str,
    prepared: PreparedInsert | None,
) -> list[int | MessageError]:
    """Insert the rows; a row whose key is taken gets that message's id, or, when the key
    names other content, an :class:`IdempotencyConflictError` (raised at once in ``raise``
    mode, all of them as one :class:`BatchError` in ``collect`` mode: either rolls back)."""
    ids = queries.insert_messages(connection, rows, prepared)
    taken = [row["idempotency_key"] for row, found in zip(rows, ids, strict=True) if found is None]
    existing = queries.find_by_idempotency_keys(connection, taken)
    outcomes: list[int | MessageError] = []
    collected: dict[int, MessageError] = {}
    for position, (row, found) in enumerate(zip(rows, ids, strict=True)):
        if found is not None:
            outcomes.append(found)
            continue
        key = row["idempotency_key"]
        existing_pk, existing_print = existing[key]
        # A row from before fingerprints were kept has none: matched by key alone.
        if existing_print in (None, row["idempotency_fingerprint"]):
            outcomes.append(existing_pk)
            continue
        conflict = IdempotencyConflictError(key, existing_pk)
        if mode == "raise":
            raise conflict
        if mode == "collect":  # rows are the items here: none was left out
            collected[position] = conflict
        outcomes.append(conflict)
    if collected:
        raise BatchError(collected)
    return outcomes
