"""Messages, backlogs and throwaway databases for the benchmark."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from mailroom.config import Settings, load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox

DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# A plain-text body of 52 lines of 72 characters, 7bit: with the headers the composed message
# is about 4.2 KB, like smtp-source's 4,000-byte payload (-l 4000) plus its headers.
_LINE = "The quick brown fox jumps over the lazy dog; pack my box with liquor. "[:70]
BODY = "\n".join(f"{n:02d} {_LINE}" for n in range(52)) + "\n"


def message(n: int) -> Message:
    """The ``n``-th benchmark message: its own recipient, subject and the ~4 KB body."""
    return Message(
        to=[f"user{n}@example.com"],
        subject=f"Your weekly digest #{n}",
        text=BODY,
        from_email="Mailroom Bench <bench@example.com>",
    )


def settings_for(database_url: str, **env: str) -> Settings:
    """Settings from exactly these values (the benchmark's working folder has no toml)."""
    return load_settings(environ={"DATABASE_URL": database_url, **env})


def bulk_rows(settings: Settings, start: int, count: int) -> list[dict[str, Any]]:
    """Rows for messages ``start`` .. ``start + count``: one envelope built and its row
    copied with a distinct Message-ID and recipient (enqueue speed is measured elsewhere)."""
    outbox = Outbox(settings)
    now = time.time()
    template = outbox._row(message(0), stream="bulk", due_at=now, now=now, idempotency_key=None)
    outbox.dispose()
    return [
        {
            **template,
            "message_id": f"<bench-{i}@example.com>",
            "recipients": [f"user{i}@example.com"],
        }
        for i in range(start, start + count)
    ]


def fill_backlog(settings: Settings, count: int, chunk: int = 20_000) -> float:
    """Queue ``count`` copied rows in transactions of ``chunk``; return the seconds taken."""
    engine = database.create_outbox_engine(settings.DATABASE_URL, durable=False)
    try:
        database.upgrade(engine)
        started = time.perf_counter()
        for first in range(0, count, chunk):
            rows = bulk_rows(settings, first, min(chunk, count - first))
            with engine.begin() as connection:
                connection.execute(insert(messages), rows)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def status_counts(settings: Settings) -> dict[str, int]:
    outbox = Outbox(settings)
    try:
        return outbox.counts()
    finally:
        outbox.dispose()


def sqlite_url(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}"


def remove_sqlite(url: str) -> None:
    path = make_url(url).database
    if path:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)


def postgres_admin_url() -> str:
    return os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN_URL)


def _admin_engine() -> Engine:
    url = database.normalise_url(postgres_admin_url())
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def postgres_version() -> str:
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


@contextmanager
def postgres_database(tag: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one scenario, dropped afterwards; yields its URL."""
    name = f"mailroom_bench_{tag}_{os.getpid()}"
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(postgres_admin_url()).set(database=name)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
