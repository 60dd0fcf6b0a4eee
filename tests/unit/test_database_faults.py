"""URLs as they are shown, and which driver errors become a DatabaseError (no I/O)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mailroom.errors import DatabaseError, DatabaseFileError, DatabaseFullError
from mailroom.outbox.faults import display_url, parse_url, sqlite_path, translate_error


def test_display_url_masks_the_password_and_makes_sqlite_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert display_url("postgresql://u:hunter2@db:5432/app") == "postgresql://u:***@db:5432/app"
    monkeypatch.chdir(tmp_path)
    assert display_url("sqlite:///mailroom.db") == f"sqlite:///{tmp_path / 'mailroom.db'}"
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql://db/app") is None


def test_an_unparsable_url_is_not_echoed() -> None:
    with pytest.raises(DatabaseError, match="DATABASE_URL") as raised:
        parse_url("::hunter2::")
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("file is not a database", DatabaseFileError),
        ("database disk image is malformed", DatabaseFileError),
        ("database or disk is full", DatabaseFullError),
        ("UNIQUE constraint failed: mailroom_messages.idempotency_key", None),
        ("database is locked", None),
    ],
)
def test_sqlite_faults_of_the_file_only(
    tmp_path: Path, message: str, expected: type[DatabaseError] | None
) -> None:
    url = make_url(f"sqlite:///{tmp_path / 'm.db'}")
    error = translate_error(sqlite3.OperationalError(message), url, connecting=False)
    if expected is None:
        assert error is None  # a constraint or a busy database is not a broken database
        return
    assert isinstance(error, expected)
    assert "DATABASE_URL" in str(error)
    assert str(tmp_path) in str(error)
