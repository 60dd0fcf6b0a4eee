"""An engine for probes and reports read often and never written (``/readyz``, ``/metrics``).

The outbox's own SQLite engine begins every transaction with ``BEGIN IMMEDIATE``, which takes
the database's one write lock even to read: right for the worker and the API, which read to
write, but a report that scans the attempts would hold up every send and every insert for as
long as it reads, and a probe would wait behind every writer. This engine opens the same file
read-only, in autocommit: in WAL mode a reader never waits for the writer nor holds it up. On
any other database reads take no such lock, and the outbox's engine is used as it is.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import Engine, create_engine

from mailroom.outbox.database_url import sqlite_path

__all__ = ["READ_BUSY_TIMEOUT", "read_only_engine"]

_READERS = 4

READ_BUSY_TIMEOUT = 5.0
"""Seconds a read waits on a database busy with recovery or a checkpoint."""


def read_only_engine(engine: Engine) -> Engine:
    """A read-only engine on the SQLite file ``engine`` uses; ``engine`` itself otherwise."""
    if engine.dialect.name != "sqlite":
        return engine
    path = sqlite_path(engine.url)
    if path is None:  # in memory: nothing else could open it
        return engine
    uri = f"{path.as_uri()}?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(
            uri, uri=True, timeout=READ_BUSY_TIMEOUT, check_same_thread=False
        )
        connection.isolation_level = None  # autocommit: no transaction held between reads
        return connection

    # The URL names the file (what an error message shows); the connections come from connect,
    # and are kept in a small pool: opening the file again for each read of an API request
    # would cost more than the read.
    return create_engine(
        engine.url,
        creator=connect,
        pool_size=_READERS,
        max_overflow=_READERS,
        pool_timeout=READ_BUSY_TIMEOUT,
    )
