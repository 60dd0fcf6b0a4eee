"""PostgreSQL engines do not wait for ever: a connect timeout on every engine, and on the
worker's also a statement and lock timeout, so a statement blocked behind another session's
lock fails (and is tried again) instead of holding the worker."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, select, text
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
            # In each transaction, the one after a rollback (the pool's reset) too.
            for _ in range(2):
                assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
                assert connection.execute(text("SHOW lock_timeout")).scalar() == "500ms"
                connection.rollback()
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


def test_the_timeouts_do_not_outlive_the_transaction(postgres_url: str) -> None:
    # Behind PgBouncer's transaction pooling the server connection goes to another client
    # once our transaction ends: a session setting would reach it (the application sharing
    # the database would find its statements cut at the worker's timeout).
    worker = create_outbox_engine(postgres_url, statement_timeout=0.5)
    try:
        with worker.connect() as connection:
            with connection.begin():
                assert connection.execute(text("SHOW lock_timeout")).scalar() == "500ms"
            # The next client on the same server connection, outside our transactions.
            raw = connection.connection.dbapi_connection
            assert raw is not None
            for setting in ("statement_timeout", "lock_timeout"):
                cursor = raw.cursor()
                cursor.execute(f"SHOW {setting}")
                assert cursor.fetchone() == ("0",), setting
                cursor.close()
            raw.rollback()
    finally:
        worker.dispose()


def test_the_timeouts_cost_one_statement_per_transaction(postgres_url: str) -> None:
    worker = create_outbox_engine(postgres_url, statement_timeout=0.5)
    statements: list[str] = []

    @event.listens_for(worker, "before_cursor_execute")
    def _count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    try:
        with worker.connect() as connection:
            statements.clear()
            with connection.begin():
                for _ in range(5):
                    connection.execute(select(messages.c.id)).all()
        assert sum("set_config" in statement for statement in statements) == 1
        assert len(statements) == 6
    finally:
        worker.dispose()
