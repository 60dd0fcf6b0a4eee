"""A SQLite outbox held locked by another process past the busy timeout: the worker's claims
and sweeps fail with a DatabaseBusyError, it says so and tries again, as it does behind
PostgreSQL's lock_timeout, instead of ending."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailroom.config import Settings, load_settings
from mailroom.delivery.worker import Worker
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from support.smtp_server import SMTPTestServer


def settings_for(path: Path, server: SMTPTestServer) -> Settings:
    return load_settings(
        environ={
            "DATABASE_URL": f"sqlite:///{path}",
            "DEFAULT_FROM_EMAIL": "sender@example.com",
            "EMAIL_BACKEND": "smtp",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_TIMEOUT": "1",
            "WORKER_POLL_INTERVAL": "0.1",
        }
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "outbox.db"


@pytest.fixture
def outbox(path: Path, smtp_server: SMTPTestServer) -> Iterator[Outbox]:
    box = Outbox(settings_for(path, smtp_server))
    database.upgrade(box.engine)
    yield box
    box.dispose()


async def test_claims_blocked_past_the_busy_timeout_are_tried_again(
    outbox: Outbox,
    path: Path,
    smtp_server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="mailroom")
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT", 0.2)
    worker = Worker(settings_for(path, smtp_server))
    run = asyncio.create_task(worker.run())
    other = sqlite3.connect(path, isolation_level=None)  # another process's session
    try:
        await asyncio.sleep(0.5)  # past the start-up checks (a lock then ends the start)
        other.execute("BEGIN EXCLUSIVE")
        await asyncio.sleep(1.5)
        assert not run.done(), run.exception() if run.done() else None
        other.execute("ROLLBACK")
        for i in range(3):  # the worker is still there to send them
            outbox.send(Message(to=[f"u{i}@example.com"], subject="Hi", text="hello"))
        deadline = time.monotonic() + 10
        while len(smtp_server.scripted.received) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        other.close()
        worker.stop()
        await asyncio.wait_for(run, 20)
        worker.engine.dispose()
    with outbox.engine.connect() as connection:
        assert list(connection.execute(select(messages.c.status)).scalars()) == ["sent"] * 3
    warnings = [record.getMessage() for record in caplog.records]
    assert any("could not claim" in w and "busy timeout" in w for w in warnings), warnings
