"""Engines for the outbox database, and the schema-version check.

SQLite (the default, ``sqlite:///mailroom.db``) runs in WAL mode so readers never block the
writer; every transaction starts with ``BEGIN IMMEDIATE`` so two writers queue for the lock
instead of failing half-way with "database is locked". An engine made ``durable`` (the one
that acknowledges enqueues) syncs each commit to disk (``synchronous=FULL``); the worker's
engine uses ``NORMAL``, which in WAL mode survives a process crash, fsyncing at checkpoints.

PostgreSQL is used through psycopg 3: ``postgresql://`` URLs get the driver added.
"""

from __future__ import annotations

import os
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from mailroom.errors import MailroomError

__all__ = ["SchemaOutdatedError", "alembic_config", "check_schema", "create_outbox_engine"]


class SchemaOutdatedError(MailroomError):
    """The database schema is older (or newer) than this version of Mailroom expects."""


def normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_outbox_engine(url: str, *, durable: bool = True) -> Engine:
    """An engine for ``DATABASE_URL``; see the module docstring for the SQLite settings."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)

    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    synchronous = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _keep_new_file_private(cursor)
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _keep_new_file_private(cursor: Any) -> None:
    """Make a database file SQLite has just created (still empty) readable by its owner only,
    before anything is written to it: it will hold password-reset links. SQLite gives the
    -wal and -shm files it makes later the database file's permissions."""
    path = cursor.execute("PRAGMA database_list").fetchone()[2]  # (seq, name, file)
    try:
        if path and os.path.getsize(path) == 0:
            os.chmod(path, 0o600)
    except OSError:
        pass  # not ours to change (another owner); SQLite reports real access problems


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration, pointing at the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(files("mailroom.outbox") / "migrations"))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (``mailroom db upgrade``)."""
    command.upgrade(alembic_config(engine), revision)


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the newest this package ships)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert head is not None  # noqa: S101 - the package ships at least one migration
    return current, head


def check_schema(engine: Engine) -> None:
    """Refuse to run on a schema that is not the one this version expects."""
    current, head = schema_revisions(engine)
    if current != head:
        state = "has no Mailroom tables" if current is None else f"is at revision {current}"
        raise SchemaOutdatedError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}; "
            f"this version of Mailroom needs {head}. Run `mailroom db upgrade` first."
        )
