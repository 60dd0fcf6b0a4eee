"""Which driver errors become a DatabaseError, and what it says (no I/O)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from mailroom.errors import (
    DatabaseBusyError,
    DatabaseError,
    DatabaseFileError,
    DatabaseFullError,
    DatabaseUnreachableError,
)
from mailroom.outbox.database_url import scrub
from mailroom.outbox.faults import translate_error


def test_a_drivers_words_lose_every_piece_of_the_password() -> None:
    # What psycopg says when SQLAlchemy took the password's tail for the host.
    url = "postgresql://u:s3cr@tPassw0rd@127.0.0.1:5432/app"
    driver = psycopg.OperationalError(
        "connection failed: failed to resolve host 'tPassw0rd@127.0.0.1': "
        "[Errno -2] Name or service not known"
    )
    for given in (url, make_url(url)):
        error = translate_error(driver, given, connecting=True)
        assert isinstance(error, DatabaseUnreachableError)
        assert "tPassw0rd" not in str(error)
        assert "s3cr" not in str(error)
        assert "failed to resolve host '***@127.0.0.1'" in str(error)
    # Encoded in the URL, decoded by the driver; and a password given as a query parameter.
    assert scrub("password hunter#2x rejected", "postgresql://u:hunter%232x@h/a") == (
        "password *** rejected"
    )
    assert scrub("no: q-secret-7", "postgresql://u@h/a?password=q-secret-7") == "no: ***"
    assert scrub("nothing secret here", "postgresql://u@h/a") == "nothing secret here"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("file is not a database", DatabaseFileError),
        ("database disk image is malformed", DatabaseFileError),
        ("database or disk is full", DatabaseFullError),
        ("UNIQUE constraint failed: mailroom_messages.idempotency_key", None),
        ("database is locked", DatabaseBusyError),
        ("database table is locked", DatabaseBusyError),
    ],
)
def test_sqlite_faults_of_the_file_only(
    tmp_path: Path, message: str, expected: type[DatabaseError] | None
) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'm.db'}")
    error = translate_error(sqlite3.OperationalError(message), url, connecting=False)
    if expected is None:
        assert error is None  # a constraint is not a fault of the database
        return
    assert isinstance(error, expected)
    assert "DATABASE_URL" in str(error)
    assert str(tmp_path) in str(error)
