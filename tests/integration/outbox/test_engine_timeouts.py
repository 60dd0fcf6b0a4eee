"""PostgreSQL engines do not wait for ever: a connect timeout on every engine, and on the
worker's also a statement and lock timeout, so a statement blocked behind another session's
lock fails (and is tried again) instead of holding the worker."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from mailroom.errors import DatabaseBusyError
from mailroom.outbox import database
from mailroom.outbox.database import CONNECT_TIMEOUT, create_outbox_engine
from mailroom.outbox.schema import messages


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    database.upgrade(create_outbox_engine(database_url))
    return database_url


def test_every_postgresql_connection_has_a_connect_timeout(postgres_url: str) -> None:
    engine = create_outbox_engine(postgres_url)
    try:
        with engine.connect() as connection:
            params = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert params["connect_timeout"] == str(CONNECT_TIMEOUT)
    finally:
        engine.dispose()


def test_a_connect_timeout_in_the_url_wins(postgres_url: str) -> None:
    url = make_url(postgres_url).update_query_dict({"connect_timeout": "3"})
    engine = create_outbox_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            params = connection.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert params["connect_timeout"] == "3"
    finally:
        engine.dispose()


def test_a_statement_blocked_by_a_lock_fails_after_the_statement_timeout(
    postgres_url: str,
) -> None:
    holder = create_outbox_engine(postgres_url)
    worker = create_outbox_engine(postgres_url, statement_timeout=0.5)
    plain = create_outbox_engine(postgres_url)
    try:
        with worker.connect() as connection:
            # Session settings that outlive a rolled-back transaction (the pool's reset).
            connection.rollback()
            assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "500ms"
        with plain.connect() as connection:
            assert connection.execute(text("SHOW lock_timeout")).scalar() == "0"
        with holder.connect() as lock:
            lock.execute(text(f"LOCK TABLE {messages.name} IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            with pytest.raises(DatabaseBusyError) as caught, worker.connect() as connection:
                connection.execute(select(messages.c.id)).all()
            assert time.monotonic() - started < 5
            lock.rollback()
        assert "DATABASE_URL" in str(caught.value)
    finally:
        for engine in (holder, worker, plain):
            engine.dispose()
