"""Engines for the outbox database, the schema-version check, and database faults as errors.

SQLite (the default, ``sqlite:///mailroom.db``) runs in WAL mode so readers never block the
writer; every transaction starts with ``BEGIN IMMEDIATE`` so two writers queue for the lock
instead of failing half-way with "database is locked". An engine made ``durable`` (the one
that acknowledges enqueues) syncs each commit to disk (``synchronous=FULL``); the worker's
engine uses ``NORMAL``, which in WAL mode survives a process crash, fsyncing at checkpoints.

PostgreSQL is used through psycopg 3: ``postgresql://`` URLs get the driver added.

Mailroom often shares a database with the application that sends the mail (and that
application may use Alembic too), so its schema version lives in a table of its own,
``mailroom_alembic_version``, never in Alembic's default ``alembic_version``; and it creates
tables only in a SQLite database that holds none yet. Anywhere else ``mailroom db upgrade``
creates them, on purpose.

Every fault of the database itself (no server, no driver, a read-only, corrupt or full file)
is raised as a :class:`~mailroom.errors.DatabaseError` naming ``DATABASE_URL`` and the fix, by
a ``handle_error`` hook on each engine, so every command and the library get the same errors.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
)
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from mailroom.errors import (
    DatabaseDriverMissingError,
    DatabaseError,
    DatabaseFileError,
    DatabaseFullError,
    DatabaseUnreachableError,
    MailroomError,
)
from mailroom.outbox.schema import messages

__all__ = [
    "LEGACY_VERSION_TABLE",
    "VERSION_TABLE",
    "SchemaOutdatedError",
    "alembic_config",
    "check_schema",
    "create_outbox_engine",
    "display_url",
    "upgrade",
]

VERSION_TABLE = "mailroom_alembic_version"
"""Where Mailroom's schema revision is kept: its own table, so an application's Alembic
history (in ``alembic_version``) and Mailroom's never meet."""

LEGACY_VERSION_TABLE = "alembic_version"
"""Where Mailroom kept its revision before it had a table of its own."""

_POSTGRES_EXTRA = "pip install 'mailroom[postgresql]'"


class SchemaOutdatedError(MailroomError):
    """The database schema is older (or newer) than this version of Mailroom expects."""


# -- URLs --------------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    parsed = _parse(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except ArgumentError:
        # The value is not echoed: it may hold a password.
        raise DatabaseError(
            "DATABASE_URL is not a database URL; write sqlite:///path/to/mailroom.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None


def sqlite_path(url: str | URL) -> Path | None:
    """The absolute path of a SQLite database file; ``None`` for other databases and for an
    in-memory SQLite."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).absolute()


def display_url(url: str | URL) -> str:
    """The URL as it may be shown: the password masked, a SQLite file as an absolute path
    (a relative one says nothing about which folder the command ran in)."""
    parsed = _parse(url)
    path = sqlite_path(parsed)
    if path is not None:
        return f"sqlite:///{path}"
    return parsed.render_as_string(hide_password=True)


# -- engines -----------------------------------------------------------------------------


def create_outbox_engine(url: str, *, durable: bool = True, must_exist: bool = False) -> Engine:
    """An engine for ``DATABASE_URL``; see the module docstring for the SQLite settings.

    ``must_exist``: the command only looks at the outbox, so a SQLite file that is not there
    is an error (the command ran in the wrong folder) rather than a new empty file.
    """
    given = _parse(url)  # as the operator wrote it, for messages
    parsed = _parse(normalise_url(url))
    path = sqlite_path(parsed)
    if path is not None and must_exist:
        _check_sqlite_path(path, must_exist=must_exist)
    try:
        if parsed.get_backend_name() != "sqlite":
            engine = create_engine(parsed, pool_pre_ping=True)
        else:
            engine = create_engine(parsed, connect_args={"timeout": 60, "check_same_thread": False})
    except (NoSuchModuleError, ImportError) as exc:
        raise _missing_driver(given, exc) from None

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        error = translate_error(context.original_exception, given, connecting=_connecting(context))
        if error is not None:
            raise error from context.original_exception

    if parsed.get_backend_name() != "sqlite":
        return engine
    synchronous = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _check_sqlite_path(path: Path, *, must_exist: bool) -> None:
    """A reader's outbox file must be there: refuse before SQLite would create an empty one."""
    fault = _path_fault(path)
    if fault is not None:
        raise fault
    if must_exist and not path.exists():
        raise DatabaseFileError(
            f"no outbox at {path} (DATABASE_URL sqlite:///{path}); run the command in the "
            "folder that holds mailroom.db, set DATABASE_URL to its absolute path, or create "
            "one with `mailroom db upgrade`"
        )


def _path_fault(path: Path) -> DatabaseFileError | None:
    """Faults of the path that are clearer said than SQLite's "unable to open"."""
    shown = f"sqlite:///{path}"
    if path.is_dir():
        return DatabaseFileError(
            f"DATABASE_URL {shown} is a directory, not a database file; "
            f"name a file in it, e.g. sqlite:///{path / 'mailroom.db'}"
        )
    if not path.parent.is_dir():
        return DatabaseFileError(
            f"DATABASE_URL {shown}: the folder {path.parent} does not exist; create it or "
            "fix the path"
        )
    return None


def _missing_driver(url: URL, exc: BaseException) -> DatabaseDriverMissingError:
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return DatabaseDriverMissingError(
            f"DATABASE_URL {display_url(url)} needs the PostgreSQL driver (psycopg), which is "
            f"not installed: {_POSTGRES_EXTRA}"
        )
    return DatabaseDriverMissingError(
        f"DATABASE_URL {display_url(url)}: no driver for {url.drivername} "
        f"({type(exc).__name__}); use sqlite:/// or postgresql:// ({_POSTGRES_EXTRA})"
    )


def _connecting(context: ExceptionContext) -> bool:
    """Whether the error came while opening a connection (no statement ran yet)."""
    return context.connection is None or context.statement is None


def _first_line(exc: BaseException, url: URL) -> str:
    """The driver's own first line, with the password (if any) taken out."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.removeprefix("connection failed: ")
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


def translate_error(exc: BaseException, url: URL, *, connecting: bool) -> DatabaseError | None:
    """The :class:`DatabaseError` for a driver exception, or ``None`` when it is not a fault of
    the database itself (a constraint, a bug) and should pass through as it is."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_error(exc, url)
    return _postgres_error(exc, url, connecting=connecting)


# SQLite reports by message (the sqlite3 module in Python 3.11 has no error codes for all of
# them); each row: a fragment of the message, the error, and what to do.
_SQLITE_FAULTS: tuple[tuple[str, type[DatabaseError], str], ...] = (
    (
        "database or disk is full",
        DatabaseFullError,
        "the disk holding it is full (or the database hit its size limit); free space, or "
        "move the database and change DATABASE_URL",
    ),
    (
        "readonly database",
        DatabaseFileError,
        "the file (or its folder, or the file system) is read-only; Mailroom must write "
        "there, next to the file too (the -wal and -shm files): fix the permissions or point "
        "DATABASE_URL at a writable place",
    ),
    (
        "read-only file system",
        DatabaseFileError,
        "the file system is read-only; point DATABASE_URL at a writable place",
    ),
    (
        "file is not a database",
        DatabaseFileError,
        "the file is not a SQLite database (or is corrupt or truncated); point DATABASE_URL "
        "at the outbox file, or restore it from a backup",
    ),
    (
        "malformed",
        DatabaseFileError,
        "the file is corrupt or truncated; restore it from a backup (or move it away to "
        "start an empty outbox)",
    ),
    (
        "unable to open database file",
        DatabaseFileError,
        "SQLite cannot open or create it (permissions, a read-only file system, or the -wal "
        "file next to it); fix that or point DATABASE_URL at a writable place",
    ),
    (
        "disk i/o error",
        DatabaseFileError,
        "the disk reported an I/O error (a read-only or failing file system); fix that or "
        "point DATABASE_URL at a writable place",
    ),
)


# SQLite's own words for a file it cannot write are vague ("disk I/O error", "unable to
# open"): where the file system can tell us why, these say it plainly.
_FILE_SYSTEM_FULL = (
    DatabaseFullError,
    "the disk holding it is full; free space, or move the database and change DATABASE_URL",
)
_FILE_SYSTEM_READ_ONLY = (
    DatabaseFileError,
    "the file system holding it is mounted read-only; Mailroom must write there (next to the "
    "file too: the -wal and -shm files): remount it read-write or point DATABASE_URL at a "
    "writable place",
)
_FILE_READ_ONLY = (
    DatabaseFileError,
    "the file (or its folder) cannot be written; Mailroom must write there (next to the "
    "file too: the -wal and -shm files): fix the permissions or point DATABASE_URL at a "
    "writable place",
)
_VAGUE_SQLITE_ERRORS = ("disk i/o error", "unable to open", "readonly database", "disk is full")


def _file_system_fault(path: Path) -> tuple[type[DatabaseError], str] | None:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return _FILE_SYSTEM_READ_ONLY
    # Less than a few pages left: SQLite could not grow the file, its journal or its -shm.
    if stats.f_bavail * stats.f_frsize < 64 * 1024:
        return _FILE_SYSTEM_FULL
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return _FILE_READ_ONLY
    return None


def _sqlite_error(exc: BaseException, url: URL) -> DatabaseError | None:
    message = str(exc).lower()
    path = sqlite_path(url)
    reason = str(exc).strip()
    if path is not None and "unable to open" in message:
        path_fault = _path_fault(path)
        if path_fault is not None:
            return path_fault
    if path is not None and any(vague in message for vague in _VAGUE_SQLITE_ERRORS):
        fault = _file_system_fault(path)
        if fault is not None:
            cls, fix = fault
            return cls(f"DATABASE_URL {display_url(url)}: {reason}: {fix}")
    for fragment, cls, fix in _SQLITE_FAULTS:
        if fragment in message:
            return cls(f"DATABASE_URL {display_url(url)}: {reason}: {fix}")
    return None


# PostgreSQL SQLSTATEs (Appendix A of its manual) of faults in the database, not the query.
_POSTGRES_SQLSTATES: dict[str, tuple[type[DatabaseError], str]] = {
    "3D000": (
        DatabaseUnreachableError,
        "create the database (createdb NAME) or fix its name in DATABASE_URL",
    ),
    "28P01": (DatabaseUnreachableError, "fix the user and password in DATABASE_URL"),
    "28000": (
        DatabaseUnreachableError,
        "the server refused this user or client (pg_hba.conf); fix the user in DATABASE_URL "
        "or the server's access rules",
    ),
    "53100": (DatabaseFullError, "the database server's disk is full; free space on it"),
    "25006": (
        DatabaseFileError,
        "the server is read-only (a standby?); point DATABASE_URL at the primary",
    ),
}


def _postgres_error(exc: BaseException, url: URL, *, connecting: bool) -> DatabaseError | None:
    shown = display_url(url)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _POSTGRES_SQLSTATES:
        cls, fix = _POSTGRES_SQLSTATES[sqlstate]
        return cls(f"DATABASE_URL {shown}: {_first_line(exc, url)}; {fix}")
    if connecting and type(exc).__name__ == "OperationalError":
        # psycopg gives no SQLSTATE for a refused connection: read its message.
        reason = _first_line(exc, url)
        fix = next(
            (fix for fragment, fix in _POSTGRES_CONNECT_FAULTS if fragment in reason.lower()),
            "start the server, or fix the host and port in DATABASE_URL",
        )
        return DatabaseUnreachableError(f"DATABASE_URL {shown}: cannot connect: {reason}; {fix}")
    return None


_POSTGRES_CONNECT_FAULTS = (
    ("does not exist", _POSTGRES_SQLSTATES["3D000"][1]),
    ("password authentication failed", _POSTGRES_SQLSTATES["28P01"][1]),
    ("no password supplied", _POSTGRES_SQLSTATES["28P01"][1]),
    ("pg_hba.conf", _POSTGRES_SQLSTATES["28000"][1]),
    ("resolve host", "the host name is unknown: fix the host in DATABASE_URL"),
    ("translate host name", "the host name is unknown: fix the host in DATABASE_URL"),
)


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


def _version_table(name: str) -> Table:
    # The table Alembic itself makes (alembic.runtime.migration), so Alembic reads it as its own.
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


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
    rows = connection.execute(select(_version_table(LEGACY_VERSION_TABLE).c.version_num))
    found = [row.version_num for row in rows if row.version_num in ours]
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
    with engine.begin() as connection:
        revision = _legacy_revision(connection)  # again, now inside the write transaction
        if revision is None:
            return None
        legacy = _version_table(LEGACY_VERSION_TABLE)
        ours = _version_table(VERSION_TABLE)
        ours.create(connection)
        connection.execute(ours.insert().values(version_num=revision))
        connection.execute(legacy.delete().where(legacy.c.version_num == revision))
        if connection.execute(select(legacy.c.version_num)).first() is None:
            legacy.drop(connection)
        return revision


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
