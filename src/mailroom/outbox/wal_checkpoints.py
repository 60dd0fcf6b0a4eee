"""Checkpoints of a SQLite outbox's write-ahead log in a thread of their own.

SQLite copies its log back into the database file (a checkpoint) on the commit that takes the
log past 1,000 pages, in the thread that committed, while that thread still holds the one
write lock. The service's request threads take that lock in turn, so every other batch send
carried a copy of several megabytes and two fsyncs for all of them to wait on. Its writer
engine turns that off (``create_outbox_engine(..., autocheckpoint=False)``) and a
:class:`WalCheckpointer` checkpoints instead, every :data:`CHECKPOINT_INTERVAL` seconds, on a
connection of its own and in ``PASSIVE`` mode: beside the writers, never waiting for them nor
holding them up; the copy runs inside SQLite, outside the GIL, on another core.

With commits not checkpointing, this thread is all that keeps the log from growing: a
connection it cannot open (the file's folder moved, no file handles left) is said in the log
and tried again at the next interval, never the end of the thread.

A ``PASSIVE`` checkpoint copies the log but never starts it again from its beginning: SQLite
does that when a writer begins a transaction and finds every frame copied, which under a
steady stream of commits never happens (frames come in while the copy runs). The SMTP
submission port's benchmark grew a 1.1 GB log in 15 seconds that way. So once the log passes
:data:`RESTART_AFTER_PAGES`, the thread asks for a ``RESTART`` checkpoint: it takes the write
lock for as long as it copies what the ``PASSIVE`` one just left (a fraction of a second's
commits) and waits for the readers of the old frames, and the next commit writes the log from
its start.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import Engine

from mailroom.outbox.database_url import sqlite_path

__all__ = ["CHECKPOINT_INTERVAL", "WalCheckpointer"]

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = 0.2
"""Seconds between checkpoints: at 10,000 messages a second the log takes about 10 MB."""

RESTART_AFTER_PAGES = 4_096
"""Log pages (16 MB at SQLite's 4 KB pages) past which a checkpoint starts the log again: a
fifth of a second of commits at the submission port's full rate. Its benchmark's log then
peaks at 60 to 100 MB (a restart waits for the write lock while the log goes on growing),
and the rate is the same as with 64 MB."""

_OPEN_TIMEOUT = 5.0
_RESTART_WAIT_MS = 2_000
"""How long a ``RESTART`` checkpoint waits for the write lock and for the old frames' readers
before it gives up until the next interval (a reader holding a snapshot that long)."""


class WalCheckpointer:
    """Checkpoints ``engine``'s SQLite file from :meth:`start` until :meth:`close`; does
    nothing for any other database (PostgreSQL needs no help, and memory has no log)."""

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float = CHECKPOINT_INTERVAL,
        restart_after_pages: int = RESTART_AFTER_PAGES,
    ) -> None:
        self._path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
        self._interval = interval
        self._restart_after_pages = restart_after_pages
        self.restarts = 0
        """``RESTART`` checkpoints that finished (for tests and benchmarks)."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    def start(self) -> None:
        if self._path is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(self._path,), name="mailroom-wal-checkpoints", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop, after a last checkpoint; waits at most ``timeout`` seconds."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, path: Path) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                stopping = self._stopping.wait(self._interval)
                if connection is None:
                    connection = self._open(path)
                if connection is not None:
                    self._checkpoint(connection)
                if stopping:
                    return
        finally:
            if connection is not None:
                connection.close()

    def _open(self, path: Path) -> sqlite3.Connection | None:
        try:
            connection = sqlite3.connect(path, timeout=_OPEN_TIMEOUT, check_same_thread=False)
        except sqlite3.Error as exc:
            self._failed(f"cannot open {path}: {exc}")
            return None
        connection.isolation_level = None
        connection.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")
        return connection

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            # (busy, pages in the log, pages copied): -1 pages when the file is not in WAL
            # mode (yet).
            _, log_pages, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if log_pages > self._restart_after_pages:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                # Busy: a writer or a reader held on past the wait; the next interval tries
                # again, and the log grows meanwhile as it would have.
                self.restarts += 0 if busy else 1
        except sqlite3.Error as exc:
            self._failed(str(exc))
        else:
            self._last_error = ""

    def _failed(self, message: str) -> None:
        # The writers go on and the log grows until it works again: said once, not five
        # times a second (the writers meet a full disk or a read-only file too).
        if message != self._last_error:
            logger.warning("the outbox's log could not be checkpointed: %s", message)
        self._last_error = message
