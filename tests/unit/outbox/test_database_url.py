"""DATABASE_URL as it is shown, and its secrets kept out of a driver's words (no I/O)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import psycopg
import pytest
from sqlalchemy.engine import make_url

from mailroom.errors import DatabaseError
from mailroom.outbox.database_url import (
    check_password_parsed,
    display_url,
    parse_url,
    scrub_chain,
    sqlite_path,
)


def test_display_url_masks_the_password_and_makes_sqlite_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert display_url("postgresql://u:hunter2@db:5432/app") == "postgresql://u:***@db:5432/app"
    monkeypatch.chdir(tmp_path)
    assert display_url("sqlite:///mailroom.db") == f"sqlite:///{tmp_path / 'mailroom.db'}"
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql://db/app") is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # SQLAlchemy's own rendering kept the query's password and cut this one at its "@".
        ("postgresql://u@db/app?password=hunter2x", "postgresql://u@db/app?password=***"),
        ("postgresql://u:s3cr@tPassw0rd@db/app", "postgresql://u:***@db/app"),
        ("postgresql://u:pa#ss?w/rd@db:5432/app", "postgresql://u:***@db:5432/app"),
        ("postgresql://ada@example.com:hunter2x@db/app", "postgresql://ada@example.com:***@db/app"),
    ],
)
def test_display_url_is_the_one_redactor(url: str, shown: str) -> None:
    assert display_url(url) == shown
    # An engine's parsed URL (how check_schema shows it) gives the same, percent-encoded.
    assert unquote(display_url(make_url(url))) == shown


def test_a_password_with_an_unencoded_at_sign_is_refused_naming_the_fix() -> None:
    with pytest.raises(DatabaseError, match="%40") as raised:
        check_password_parsed("postgresql://u:s3cr@tPassw0rd@127.0.0.1/app")
    assert "s3cr" not in str(raised.value)
    assert "tPassw0rd" not in str(raised.value)
    check_password_parsed("postgresql://u:s3cr%40tPassw0rd@127.0.0.1/app")
    check_password_parsed("postgresql://ada@example.com:hunter2x@127.0.0.1/app")
    check_password_parsed("sqlite:////srv/a@b/mailroom.db")


@pytest.mark.parametrize(
    "url",
    [
        # SQLAlchemy read "w0rd:Xy9zQ@127.0.0.1:5432" as host and port, and its ValueError
        # for the port quoted "Xy9zQ@127.0.0.1:5432".
        "postgresql://u:Pa55@w0rd:Xy9zQ@127.0.0.1:5432/db",
        # The "@" followed by "?": SQLAlchemy took "w0rd" for the host.
        "postgresql://u:Pa55@w0rd?x:Xy9zQ@127.0.0.1:5432/db",
        "postgresql://u:Pa55@w0rd/Xy9zQ@127.0.0.1:5432/db",
        "postgresql://u:Pa55@w0rd#Xy9zQ@127.0.0.1:5432/db",
    ],
)
def test_an_at_sign_in_the_password_is_refused_before_parsing(url: str) -> None:
    for check in (parse_url, check_password_parsed, display_url):
        if check is display_url:
            assert display_url(url) == "postgresql://u:***@127.0.0.1:5432/db"  # never raises
            continue
        with pytest.raises(DatabaseError, match="%40") as raised:
            check(url)
        for piece in ("Pa55", "w0rd", "Xy9zQ"):
            assert piece not in str(raised.value)


def test_a_port_that_is_not_a_number_is_not_echoed() -> None:
    with pytest.raises(DatabaseError, match="not a database URL") as raised:
        parse_url("postgresql://u:pw@db:Xy9zQ/app")
    assert "Xy9zQ" not in str(raised.value)


def test_the_drivers_exception_chain_loses_the_password() -> None:
    # What a -v traceback or a logged exception prints: the DatabaseError and the driver's
    # exception chained to it (SQLAlchemy chains it whatever the handle_error hook raises).
    url = "postgresql://u:Kq7vX2tPw9qZx@127.0.0.1:5432/app"
    driver = psycopg.OperationalError("failed to resolve host 'Kq7vX2tPw9qZx'")
    middle = ValueError("Kq7vX2tPw9qZx is not a host")
    driver.__context__ = middle
    # An OSError's text is its strerror and file name, not its args: it cannot be rewritten,
    # so it is dropped from the chain.
    middle.__cause__ = OSError(2, "no such host", "Kq7vX2tPw9qZx")
    scrub_chain(driver, url)
    assert str(driver) == "failed to resolve host '***'"
    assert driver.__context__ is middle
    assert str(middle) == "*** is not a host"
    assert middle.__cause__ is None
    assert middle.__context__ is None


def test_an_unparsable_url_is_not_echoed() -> None:
    with pytest.raises(DatabaseError, match="DATABASE_URL") as raised:
        parse_url("::hunter2::")
    assert "hunter2" not in str(raised.value)
