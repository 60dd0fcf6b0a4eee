"""Messages that arrive as finished bytes (the SMTP submission port): stored as they came,
with the envelope they came with, committed in groups by one writer thread.

:meth:`~mailroom.outbox.store.Outbox.send` builds a message's bytes from its fields; a
submitted message already has them, and rebuilding would change what its author signed or
meant. So a :class:`RawSubmission` becomes a message row directly, the same row and the same
``queued`` events (:func:`mailroom.outbox.queries.insert_messages`) a built message gets, and
from there a worker cannot tell the two apart: it claims, checks consent, sends and retries
either alike.

:class:`SubmissionWriter` is the group commit for them (as
:class:`~mailroom.outbox.group_commit.GroupCommit` is for built messages): with the durable
commit kept, each commit waits for the disk, so every submission waiting when the writer
thread comes round is committed in one transaction and one sync; each caller learns its id
only after that commit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.engine import Dialect

from mailroom.outbox import queries
from mailroom.outbox.commit_groups import take_group
from mailroom.outbox.message_insert import PreparedInsert, prepare_insert
from mailroom.outbox.vocabulary import STREAM_PRIORITIES, ConsentFacts, Status

__all__ = [
    "RawSubmission",
    "SubmissionWriter",
    "commit_submissions",
    "insert_submissions",
    "submission_row",
]

logger = logging.getLogger(__name__)

_MAX_GROUP = 500
_SWEEP_INTERVAL = 1.0  # seconds between looks for submissions past their time
_SUBJECT_MAX = 500  # what Outbox._row keeps of a subject, for listings


@dataclass(frozen=True, slots=True)
class RawSubmission:
    """One message as submitted: its envelope and its bytes, already checked by the caller
    (the SMTP handler checks the addresses, the size and the header lines)."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    """The message's ``Message-ID`` header (added by the caller if it had none)."""
    subject: str
    """For listings and search only; the bytes keep the header as it was."""
    smtputf8: bool
    stream: str
    extra: Mapping[str, Any] | None = None
    """Stored as the message's metadata (the API key that submitted it)."""
    consent: ConsentFacts | None = field(default=None)
    """As for :meth:`~mailroom.outbox.store.Outbox.send_many`: ``None`` is checked at claim
    against ``all`` as required mail, as a message sent through the API is."""


def submission_row(submission: RawSubmission, now: float) -> dict[str, Any]:
    """The message row for ``submission``, in the shape ``Outbox._row`` makes (no
    idempotency key, due at once)."""
    consent = submission.consent
    return {
        "message_id": submission.message_id,
        "stream": submission.stream,
        "priority": STREAM_PRIORITIES.get(submission.stream, 50),
        "status": Status.QUEUED.value,
        "sender": submission.sender,
        "recipients": list(submission.recipients),
        "subject": submission.subject.strip()[:_SUBJECT_MAX],
        "data": submission.data,
        "smtputf8": submission.smtputf8,
        "idempotency_key": None,
        "idempotency_fingerprint": None,
        "extra": dict(submission.extra) if submission.extra else None,
        "consent_scopes": list(consent.scopes) if consent is not None else None,
        "consent_required": consent.required if consent is not None else None,
        "created_at": now,
        "due_at": now,
        "updated_at": now,
        "attempts": 0,
        "tracked_links": None,
    }


def commit_submissions(engine: Engine, submissions: Sequence[RawSubmission]) -> list[int]:
    """Insert every submission, with its ``queued`` events, in one transaction; their ids in
    order. The schema must be current (``Outbox.ensure_schema``)."""
    with engine.connect() as connection:
        return insert_submissions(connection, submissions)


def insert_submissions(connection: Connection, submissions: Sequence[RawSubmission]) -> list[int]:
    """:func:`commit_submissions` on a connection the caller keeps (not in a transaction)."""
    now = time.time()
    rows = [submission_row(submission, now) for submission in submissions]
    # Built before the write lock is taken, for the time the lock is held to be the
    # database's alone (mailroom.outbox.message_insert).
    prepared = prepare_insert(rows, connection.dialect)
    if connection.dialect.name == "sqlite":
        ids = _insert_on_sqlite(connection, rows, prepared)
    else:
        with connection.begin():
            ids = queries.insert_messages(connection, rows, prepared)
    return [message_pk for message_pk in ids if message_pk is not None]


class _SQLiteStatements:
    """As much of a :class:`~sqlalchemy.Connection` as the inserts use on SQLite
    (``dialect`` and ``exec_driver_sql``), run on the sqlite3 connection itself.

    SQLAlchemy's own execution (its events, an execution context and a result for each
    statement, its transaction's begin and commit) costs about as much Python a commit as the
    whole group's rows (0.2 to 0.3 ms for the four statements of a commit), and the writer
    thread holds the GIL for all of it, which the event loop then waits for."""

    def __init__(self, driver: sqlite3.Connection, dialect: Dialect) -> None:
        self.dialect = dialect
        self.cursor = driver.cursor()

    def exec_driver_sql(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.cursor.execute(sql, parameters)


def _insert_on_sqlite(
    connection: Connection, rows: list[dict[str, Any]], prepared: PreparedInsert
) -> list[int | None]:
    """:func:`queries.insert_messages` in a transaction of the sqlite3 connection under
    ``connection``: ``BEGIN IMMEDIATE`` (the write lock first, as the engine's own
    transactions take it), the same statements, then ``COMMIT``; rolled back if any fails."""
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)  # noqa: S101 - the sqlite dialect's driver
    statements = _SQLiteStatements(driver, connection.dialect)
    statements.exec_driver_sql("BEGIN IMMEDIATE")
    try:
        # The functions read only dialect and exec_driver_sql (and the results' lastrowid
        # and rowcount, which a sqlite3 cursor has): the same statements as through
        # SQLAlchemy, without its execution around each.
        ids = queries.insert_messages(cast(Connection, statements), rows, prepared)
        statements.exec_driver_sql("COMMIT")
    except BaseException:
        if driver.in_transaction:
            driver.rollback()
        raise
    return ids


_Waiting = tuple[RawSubmission, "asyncio.Future[int]"]


class SubmissionWriter:
    """A writer thread committing the submissions :meth:`submit` hands it, in groups, for
    callers on one asyncio event loop.

    The answers of a group go back to the loop in one call (one wake-up of the loop per
    commit, not one per message, as a :class:`concurrent.futures.Future` each would take)."""

    def __init__(
        self, engine: Engine, loop: asyncio.AbstractEventLoop, *, max_group: int = _MAX_GROUP
    ) -> None:
        self.engine = engine
        self.loop = loop
        self.max_group = max_group
        self._waiting: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name="mailroom-submission-writer", daemon=True
        )
        # A daemon: a process killed or exiting without close() is not held up by it; a
        # submission in flight is then not committed, and so was never acknowledged.
        self._closed = False
        self._deadlines: collections.deque[tuple[float, asyncio.Future[int]]] = collections.deque()
        """Each submission with a time limit, in the order submitted (in the loop's thread)."""
        self._sweeper: asyncio.TimerHandle | None = None
        self._connection: Connection | None = None
        """The thread's own, kept between commits (a pool's check-out and the rollback of
        its check-in cost more than a small group's insert); dropped after a failure."""
        self._thread.start()

    def submit(
        self, submission: RawSubmission, timeout: float | None = None
    ) -> asyncio.Future[int]:
        """The id of ``submission`` once committed (or the exception the commit raised; or
        :class:`TimeoutError` if it is not committed within ``timeout`` seconds, give or
        take :data:`_SWEEP_INTERVAL`). Called in the loop's thread. A future done (timed
        out, cancelled) before its group is committed is left out of it.

        The time limit is kept here rather than by :func:`asyncio.wait_for`, which costs a
        timer, a second future and two callbacks for every message: one timer looks over
        them all once a second instead."""
        if self._closed:
            raise RuntimeError("the submission writer is closed")
        future: asyncio.Future[int] = self.loop.create_future()
        self._waiting.put((submission, future))
        if timeout is not None:
            self._deadlines.append((self.loop.time() + timeout, future))
            if self._sweeper is None:
                self._sweeper = self.loop.call_later(_SWEEP_INTERVAL, self._sweep)
        return future

    def _sweep(self) -> None:
        """In the loop: the submissions past their time fail with :class:`TimeoutError`
        (the commit leaves out those not taken yet); the sweep goes on while any wait."""
        now = self.loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
            _, future = deadlines.popleft()
            if not future.done():
                future.set_exception(TimeoutError("the commit did not end in time"))
        self._sweeper = self.loop.call_later(_SWEEP_INTERVAL, self._sweep) if deadlines else None

    def close(self, timeout: float) -> bool:
        """Commit what is waiting, then stop the thread; whether it stopped within
        ``timeout`` seconds (if not, it is a daemon and ends with the process)."""
        if not self._closed:
            self._closed = True
            self._waiting.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._take_groups()
        finally:
            if self._connection is not None:
                self._connection.close()

    def _take_groups(self) -> None:
        while True:
            taken = take_group(self._waiting, self.max_group)
            if taken is None:
                return
            group, stop = taken
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Waiting]) -> None:
        # Read from this thread, a cancellation or time-out may come just after: then the
        # message is committed with nobody told, and its client, which got no 250, sends it
        # again.
        waiting = [(item, future) for item, future in group if not future.done()]
        if not waiting:
            return
        futures = [future for _, future in waiting]
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
            ids = insert_submissions(self._connection, [item for item, _ in waiting])
        except Exception as exc:  # every caller of the group gets it, and answers 451
            self._drop_connection()
            logger.warning(
                "could not commit %d submitted messages: %s",
                len(waiting),
                type(exc).__name__,
                extra={"count": len(waiting)},
            )
            self._answer(futures, exc)
            return
        self._answer(futures, ids)

    def _drop_connection(self) -> None:
        """After a failure the connection may be broken (a restarted server): a new one for
        the next group."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()
                connection.close()

    def _answer(self, futures: list[asyncio.Future[int]], outcome: list[int] | Exception) -> None:
        try:
            self.loop.call_soon_threadsafe(_settle, futures, outcome)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.warning("%d commits ended after the event loop", len(futures))


def _settle(futures: list[asyncio.Future[int]], outcome: list[int] | Exception) -> None:
    """In the loop: each future its id, or every one the exception."""
    for position, future in enumerate(futures):
        if future.done():  # cancelled or timed out meanwhile
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome[position])
