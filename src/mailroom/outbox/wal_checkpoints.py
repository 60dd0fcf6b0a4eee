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

_OPEN_TIMEOUT = 5.0


class WalCheckpointer:
    """Checkpoints ``engine``'s SQLite file from :meth:`start` until :meth:`close`; does
    nothing for any other database (PostgreSQL needs no help, and memory has no log)."""

    def __init__(self, engine: Engine, *, interval: float = CHECKPOINT_INTERVAL) -> None:
        self._path = sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
        self._interval = interval
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
        return connection

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
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
