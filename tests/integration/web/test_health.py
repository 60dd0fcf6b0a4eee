"""``/healthz`` and ``/readyz`` of a real ``mailroom serve`` process."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
from sqlalchemy import column, table, update

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
            assert httpx.get(f"{service.url}/readyz").json() == {"status": "ready"}
            # The database is taken back to an older schema behind the service's back.
            with outbox.engine.begin() as connection:
                versions = table(VERSION_TABLE, column("version_num"))
                connection.execute(update(versions).values(version_num="0006"))
            answer = httpx.get(f"{service.url}/readyz")
            assert answer.status_code == 503
            error = answer.json()["error"]
            assert error["code"] == "not_ready"
            assert "revision 0006" in error["message"]
            assert "mailroom db upgrade" in error["message"]
            assert error["field"] is None
            # Alive all the same: nothing a restart would cure.
            assert httpx.get(f"{service.url}/healthz").status_code == 200
    finally:
        outbox.dispose()


def test_readyz_answers_503_in_bounded_time_while_the_database_does_not(tmp_path: Path) -> None:
    env, outbox = migrated(tmp_path)
    outbox.dispose()
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
        # Another process holds the write lock: the check waits on it (busy timeout 60 s).
        blocker = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            started = time.monotonic()
            answers = [httpx.get(f"{service.url}/readyz", timeout=30) for _ in range(2)]
            took = time.monotonic() - started
            assert httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200
        finally:
            blocker.rollback()
            blocker.close()
        assert [a.status_code for a in answers] == [503, 503]
        assert answers[0].json()["error"]["code"] == "not_ready"
        assert "did not answer within" in answers[0].json()["error"]["message"]
        assert took < 2 * READY_TIMEOUT + 3
        # The lock gone, the same check (still running, not started twice) comes back.
        deadline = time.monotonic() + 30
        while httpx.get(f"{service.url}/readyz", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "readyz never recovered"
            time.sleep(0.1)
