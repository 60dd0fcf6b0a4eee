"""Engines for the outbox database, the schema-version check, and database faults as errors.

SQLite (the default, ``sqlite:///mailroom.db``) runs in WAL mode so readers never block the
writer; every transaction starts with ``BEGIN IMMEDIATE`` so two writers queue for the lock
instead of failing half-way with "database is locked" (which comes only after
:data:`SQLITE_BUSY_TIMEOUT`, as a :class:`~mailroom.errors.DatabaseBusyError`). An engine
made ``durable`` (the one that acknowledges enqueues) syncs each commit to disk
(``synchronous=FULL``); the worker's engine uses ``NORMAL``, which in WAL mode survives a
process crash, fsyncing at checkpoints.

PostgreSQL is used through psycopg 3: ``postgresql://`` URLs get the driver added, and a
``connect_timeout`` of :data:`CONNECT_TIMEOUT` seconds unless the URL sets one, so a server
that accepts the connection and never answers is an error, not a hang. An engine given a
``statement_timeout`` (the worker's) also sets PostgreSQL's ``statement_timeout`` and
``lock_timeout`` for each transaction (never for the session, which a pooler such as
PgBouncer may hand to another client): a statement blocked behind another session's lock fails
after that long and is tried again, instead of holding the worker.

Mailroom often shares a database with the application that sends the mail (and that
application may use Alembic too), so its schema version lives in a table of its own,
``mailroom_alembic_version``, never in Alembic's default ``alembic_version`` (moving a revision
an older release kept there: :mod:`mailroom.outbox.version_queries`); and it creates
tables only in a SQLite database that holds none yet. Anywhere else ``mailroom db upgrade``
creates them, on purpose.

The only SQL written here is the engines' own setup (SQLite's ``PRAGMA`` settings and ``BEGIN
IMMEDIATE``, PostgreSQL's per-transaction timeouts); every query on data is in a query module.

Every fault of the database itself (no server, no driver, a read-only, corrupt or full file)
is raised as a :class:`~mailroom.errors.DatabaseError` naming ``DATABASE_URL`` and the fix
(:mod:`mailroom.outbox.faults`), by a ``handle_error`` hook on each engine, so every command
and the library get the same errors.
"""

from __future__ import annotations

import contextlib
import os
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, NoSuchModuleError

from mailroom.errors import SchemaOutdatedError
from mailroom.outbox import version_queries
from mailroom.outbox.database_url import (
    check_password_parsed,
    display_url,
    parse_url,
    scrub_chain,
    sqlite_path,
)
from mailroom.outbox.faults import check_sqlite_path, missing_driver, translate_error
from mailroom.outbox.schema import messages

__all__ = [
    "LEGACY_VERSION_TABLE",
    "VERSION_TABLE",
    "alembic_config",
    "check_schema",
    "create_outbox_engine",
    "display_url",
    "sqlite_path",
    "upgrade",
]

VERSION_TABLE = "mailroom_alembic_version"
"""Where Mailroom's schema revision is kept: its own table, so an application's Alembic
history (in ``alembic_version``) and Mailroom's never meet."""

LEGACY_VERSION_TABLE = "alembic_version"
"""Where Mailroom kept its revision before it had a table of its own."""


CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL server to complete a new connection."""

SQLITE_BUSY_TIMEOUT = 60
"""Seconds a SQLite statement waits for another session's lock before "database is locked"
(a :class:`~mailroom.errors.DatabaseBusyError`)."""


# -- URLs and engines ------------------------------------------------------------------


def normalise_url(url: str) -> str:
    parsed = parse_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    password = parsed.query.get("password")
    if parsed.get_backend_name() == "postgresql" and isinstance(password, str):
        # libpq's ?password= as the URL's own password (the query wins over the user
        # information in libpq, and here): SQLAlchemy masks that one in the engine's repr and
        # str(engine.url), never a query parameter.
        parsed = parsed.difference_update_query(["password"]).set(password=password)
    return parsed.render_as_string(hide_password=False)


def create_outbox_engine(
    url: str,
    *,
    durable: bool = True,
    must_exist: bool = False,
    statement_timeout: float | None = None,
    single_writer: bool = False,
    autocheckpoint: bool = True,
) -> Engine:
    """An engine for ``DATABASE_URL``; see the module docstring for the settings it makes.

    ``single_writer`` (SQLite): one connection, which threads of this process take in turn.
    SQLite lets one writer in at a time and makes the others retry with sleeps that grow to
    100 ms; a server whose request threads write would spend its latency in those sleeps,
    while a thread waiting for the pool's one connection is woken the moment it is free.

    ``autocheckpoint=False`` (SQLite): commits never copy the log back into the database;
    the caller runs a :class:`~mailroom.outbox.wal_checkpoints.WalCheckpointer` instead.

    ``must_exist``: the command only looks at the outbox, so a SQLite file that is not there
    is an error (the command ran in the wrong folder) rather than a new empty file.
    ``statement_timeout``: seconds a PostgreSQL statement may run or wait for a lock.
    """
    given = url  # as the operator wrote it: what messages show, and what they must not
    check_password_parsed(given)
    parsed = parse_url(normalise_url(url))
    path = sqlite_path(parsed)
    if path is not None and must_exist:
        check_sqlite_path(path)
    try:
        if parsed.get_backend_name() != "sqlite":
            # The URL's own connect_timeout (psycopg reads it from there) wins over ours.
            connect = (
                {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT}
            )
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect)
        else:
            pooling: dict[str, Any] = (
                {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_BUSY_TIMEOUT}
                if single_writer
                else {}
            )
            engine = create_engine(
                parsed,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
                **pooling,
            )
    except (NoSuchModuleError, ImportError) as exc:
        raise missing_driver(given, exc) from None

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = translate_error(context.original_exception, given, connecting=_connecting(context))
        if error is not None:
            # SQLAlchemy chains the driver's exception to whatever this hook raises ("from
            # None" here would be overridden), and a -v or logged traceback prints it: take
            # the URL's secrets out of it first (a driver names the host it parsed, which may
            # be a piece of the password).
            scrub_chain(context.original_exception, given)
            raise error from context.original_exception

    if parsed.get_backend_name() != "sqlite":
        if statement_timeout is not None:
            _limit_statements(engine, statement_timeout)
        return engine
    synchronous = "FULL" if durable else "NORMAL"
    busy_milliseconds = round(SQLITE_BUSY_TIMEOUT * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _keep_new_file_private(cursor)
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_milliseconds}")
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _limit_statements(engine: Engine, seconds: float) -> None:
    milliseconds = str(max(1, round(seconds * 1000)))

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Transaction settings (SET LOCAL), made again as each transaction begins: a session
        # setting would outlive our use of the server connection, and behind PgBouncer's
        # transaction pooling it would reach the next client given that connection (the
        # application sharing the database). Not startup "options" either, which PgBouncer
        # refuses. One statement, one round trip per transaction.
        connection.exec_driver_sql(
            "SELECT set_config('statement_timeout', %(ms)s, true), "
            "set_config('lock_timeout', %(ms)s, true)",
            {"ms": milliseconds},
        )


def _keep_new_file_private(cursor: Any) -> None:
    """Make a database file SQLite has just created (still empty) readable by its owner only,
    before anything is written to it: it will hold password-reset links. SQLite gives the
    -wal and -shm files it makes later the database file's permissions."""
    path = cursor.execute("PRAGMA database_list").fetchone()[2]  # (seq, name, file)
    # An OSError means the file is not ours to change (another owner): SQLite itself reports
    # real access problems.
    with contextlib.suppress(OSError):
        if path and os.path.getsize(path) == 0:
            os.chmod(path, 0o600)


def _connecting(context: ExceptionContext) -> bool:
    """Whether the error came while opening a connection (no statement ran yet)."""
    return context.connection is None or context.statement is None


# -- the schema ------------------------------------------------------------------------


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration, pointing at the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(files("mailroom.outbox") / "migrations"))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _head() -> str:
    head = _script().get_current_head()
    assert head is not None  # noqa: S101 - the package ships at least one migration
    return head


def _legacy_revision(connection: Connection) -> str | None:
    """One of our revisions, if an older Mailroom kept it in ``alembic_version``; a revision
    of anyone else's there (the application's own Alembic) is not ours and is ignored."""
    names = set(inspect(connection).get_table_names())
    if LEGACY_VERSION_TABLE not in names or VERSION_TABLE in names:
        return None
    if messages.name not in names:
        # Without our tables the revision cannot be ours, even if an application happens to
        # name its migrations as we do ("0001").
        return None
    ours = {script.revision for script in _script().walk_revisions()}
    found = [r for r in version_queries.revisions_in(connection, LEGACY_VERSION_TABLE) if r in ours]
    return found[0] if len(found) == 1 else None


def _current_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    current = context.get_current_revision()
    return current if current is not None else _legacy_revision(connection)


def adopt_legacy_version(engine: Engine) -> str | None:
    """Move our revision from ``alembic_version`` (where Mailroom kept it before) into
    ``mailroom_alembic_version``, dropping ``alembic_version`` if nothing else is left in it.
    Returns the revision moved, if any. A no-op on every database but such an old one."""
    with engine.connect() as connection:
        if _legacy_revision(connection) is None:
            return None
    try:
        with engine.begin() as connection:
            revision = _legacy_revision(connection)  # again, inside the write transaction
            if revision is None:
                return None
            version_queries.move_revision(
                connection, revision, source=LEGACY_VERSION_TABLE, target=VERSION_TABLE
            )
            return revision
    except DBAPIError:
        # Two processes starting at once on PostgreSQL: the other one moved it first.
        with engine.connect() as connection:
            if VERSION_TABLE in inspect(connection).get_table_names():
                return None
        raise


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``revision`` (``mailroom db upgrade``); (revision before, after)."""
    adopt_legacy_version(engine)
    before = schema_revisions(engine)[0]
    command.upgrade(alembic_config(engine), revision)
    return before, schema_revisions(engine)[0]


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the newest this package ships)."""
    with engine.connect() as connection:
        current = _current_revision(connection)
    return current, _head()


def holds_no_tables(engine: Engine) -> bool:
    """Whether the database has no tables at all (a new or empty SQLite file)."""
    with engine.connect() as connection:
        return not inspect(connection).get_table_names()


def check_schema(engine: Engine) -> None:
    """Refuse to run on a schema that is not the one this version expects."""
    current, head = schema_revisions(engine)
    if current == head:
        return
    shown = display_url(engine.url)
    if current is None:
        raise SchemaOutdatedError(
            f"the database {shown} (DATABASE_URL) has no Mailroom tables; Mailroom creates "
            "them on its own only in a new SQLite file, never in a database that may be "
            "another application's. Run `mailroom db upgrade` to create them."
        )
    raise SchemaOutdatedError(
        f"the database {shown} (DATABASE_URL) is at revision {current}; this version of "
        f"Mailroom needs {head}. Run `mailroom db upgrade` first."
    )
