"""``/healthz`` and ``/readyz`` of a real ``mailroom serve`` process."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import column, table, text, update

from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.database import VERSION_TABLE
from mailroom.outbox.store import Outbox
from mailroom.web.health import READY_TIMEOUT
from support.service import ServiceProcess


def migrated(tmp_path: Path) -> tuple[dict[str, str], Outbox]:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}", "SECRET_KEY": "k" * 40}
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    return env, outbox


def test_ready_while_the_schema_is_current_and_not_once_it_is_not(tmp_path: Path) -> None:
    env, outbox = migrated(tmp_path)
    try:
        with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
            assert service.get("/readyz").json() == {"status": "ready"}
            # The database is taken back to an older schema behind the service's back.
            with outbox.engine.begin() as connection:
                versions = table(VERSION_TABLE, column("version_num"))
                connection.execute(update(versions).values(version_num="0006"))
            answer = service.get("/readyz")
            assert answer.status_code == 503
            error = answer.json()["error"]
            assert error["code"] == "not_ready"
            # A fixed sentence: anyone may ask; the details are in the log.
            assert error["message"] == "the schema is not current: run mailroom db upgrade"
            assert error["field"] is None
            # Alive all the same: nothing a restart would cure.
            assert service.get("/healthz").status_code == 200
        assert "revision 0006" in service.output
    finally:
        outbox.dispose()


def test_readyz_stays_ready_while_a_writer_holds_the_sqlite_lock(tmp_path: Path) -> None:
    env, outbox = migrated(tmp_path)
    outbox.dispose()
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
        writer = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # as a worker recording a batch holds it
            started = time.monotonic()
            answer = service.get("/readyz", timeout=30)
            took = time.monotonic() - started
        finally:
            writer.rollback()
            writer.close()
    assert answer.status_code == 200, answer.text
    assert took < 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_readyz_answers_503_in_bounded_time_while_the_database_hangs(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url}
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    try:
        with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
            # Another session holds a lock the check must wait for, and does not let go.
            with outbox.engine.connect() as blocker:
                blocker.execute(text(f"LOCK TABLE {VERSION_TABLE} IN ACCESS EXCLUSIVE MODE"))
                started = time.monotonic()
                answers = [service.get("/readyz", timeout=30) for _ in range(2)]
                took = time.monotonic() - started
                assert service.get("/healthz", timeout=2).status_code == 200
                blocker.rollback()
            assert [a.status_code for a in answers] == [503, 503]
            error = answers[0].json()["error"]
            assert error["code"] == "not_ready"
            assert "did not answer within" in error["message"]
            assert took < 2 * READY_TIMEOUT + 3
            # The lock gone, the same check (still running, not started twice) comes back.
            deadline = time.monotonic() + 30
            while service.get("/readyz", timeout=30).status_code != 200:
                assert time.monotonic() < deadline, "readyz never recovered"
                time.sleep(0.1)
    finally:
        outbox.dispose()
