"""Database faults as errors: a driver's exception becomes one :class:`DatabaseError` that
names ``DATABASE_URL`` (as :mod:`mailroom.outbox.database_url` shows it: redacted, a SQLite path
made absolute) and the fix. The driver's own words are kept, with every piece of the URL's
secrets taken out: a driver echoes what it parsed (a host name that may be the tail of a
password).

One declarative table per database (SQLite by message, PostgreSQL by SQLSTATE, and by message
where psycopg gives none); anything not in a table (a constraint, a bug) passes through as it
is. :mod:`mailroom.outbox.database` applies this to every engine it makes.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL

from mailroom.errors import (
    DatabaseBusyError,
    DatabaseDriverMissingError,
    DatabaseError,
    DatabaseFileError,
    DatabaseFullError,
    DatabaseUnreachableError,
)
from mailroom.outbox.database_url import display_url, parse_url, parsed_or_none, scrub, sqlite_path

__all__ = ["check_sqlite_path", "missing_driver", "translate_error"]

_POSTGRES_EXTRA = "pip install 'mailroom[postgresql]'"


def check_sqlite_path(path: Path) -> None:
    """A reader's outbox file must be there: refuse before SQLite would create an empty one."""
    fault = _path_fault(path)
    if fault is not None:
        raise fault
    if not path.exists():
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


def missing_driver(url: str | URL, exc: BaseException) -> DatabaseDriverMissingError:
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return DatabaseDriverMissingError(
            f"DATABASE_URL {display_url(url)} needs the PostgreSQL driver (psycopg), which is "
            f"not installed: {_POSTGRES_EXTRA}"
        )
    return DatabaseDriverMissingError(
        f"DATABASE_URL {display_url(url)}: no driver for {parsed.drivername} "
        f"({type(exc).__name__}); use sqlite:/// or postgresql:// ({_POSTGRES_EXTRA})"
    )


def _first_line(exc: BaseException) -> str:
    """The driver's own first line, as it is: only ever shown through :func:`scrub`."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("connection failed: ")


def translate_error(
    exc: BaseException, url: str | URL, *, connecting: bool
) -> DatabaseError | None:
    """The :class:`DatabaseError` for a driver exception, or ``None`` when it is not a fault of
    the database itself (a constraint, a bug) and should pass through as it is.

    ``url`` as the operator wrote it (the string, best): what may be shown, and what must not
    be, is read from it."""
    parsed = parsed_or_none(url)  # None: refused by parse_url (a password with an "@")
    if parsed is not None and parsed.get_backend_name() == "sqlite":
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
        # "database is locked" / "database table is locked": another session held the lock
        # past the busy timeout (database.SQLITE_BUSY_TIMEOUT). Busy, not broken: the worker
        # tries a claim or a sweep again, as after PostgreSQL's lock_timeout.
        "is locked",
        DatabaseBusyError,
        "another process held the database locked longer than the busy timeout (a long "
        "transaction, a backup, or a sqlite3 shell left in a transaction); end it",
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


def _sqlite_error(exc: BaseException, url: str | URL) -> DatabaseError | None:
    message = str(exc).lower()
    path = sqlite_path(url)
    reason = scrub(str(exc).strip(), url)
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
    # The worker's statement_timeout and lock_timeout (database.create_outbox_engine).
    "57014": (
        DatabaseBusyError,
        "a statement ran or waited too long, most likely for a lock another session holds "
        "(see pg_locks and pg_stat_activity); end that session or its long transaction",
    ),
    "55P03": (
        DatabaseBusyError,
        "a statement waited too long for a lock another session holds (see pg_locks and "
        "pg_stat_activity); end that session or its long transaction",
    ),
}


def _postgres_error(
    exc: BaseException, url: str | URL, *, connecting: bool
) -> DatabaseError | None:
    reason = _first_line(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate in _POSTGRES_SQLSTATES:
        cls, fix = _POSTGRES_SQLSTATES[sqlstate]
        what = ""
    # (psycopg's ConnectionTimeout, for connect_timeout, is an OperationalError too.)
    elif connecting and any(c.__name__ == "OperationalError" for c in type(exc).__mro__):
        # psycopg gives no SQLSTATE for a refused connection: read its message.
        cls, what = DatabaseUnreachableError, "cannot connect: "
        fix = next(
            (fix for fragment, fix in _POSTGRES_CONNECT_FAULTS if fragment in reason.lower()),
            "start the server, or fix the host and port in DATABASE_URL",
        )
    else:
        return None
    # The driver names what it parsed (host, user, database), and any of it may hold a piece
    # of the password: its words are read as they are (above) but shown scrubbed.
    return cls(f"DATABASE_URL {display_url(url)}: {what}{scrub(reason, url)}; {fix}")


_POSTGRES_CONNECT_FAULTS = (
    ("does not exist", _POSTGRES_SQLSTATES["3D000"][1]),
    ("password authentication failed", _POSTGRES_SQLSTATES["28P01"][1]),
    ("no password supplied", _POSTGRES_SQLSTATES["28P01"][1]),
    ("pg_hba.conf", _POSTGRES_SQLSTATES["28000"][1]),
    ("resolve host", "the host name is unknown: fix the host in DATABASE_URL"),
    ("translate host name", "the host name is unknown: fix the host in DATABASE_URL"),
    (
        "timeout expired",
        "the server accepted the connection but did not answer in time (connect_timeout): "
        "check that it is a PostgreSQL server and not overloaded, and the host and port in "
        "DATABASE_URL",
    ),
)
