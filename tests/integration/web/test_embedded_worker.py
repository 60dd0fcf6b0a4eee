"""The worker inside ``mailroom serve`` (:class:`EmbeddedWorker`), in the test's event loop
with a real worker, database and relay: a run that fails or ends while the service runs stops
the service; a stop gives back what was being sent, in bounded time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import create_engine

from mailroom.config import load_settings
from mailroom.delivery.worker import Worker
from mailroom.errors import SchemaOutdatedError
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from mailroom.web.embedded_worker import EmbeddedWorker
from support.stalling_relay import StallAt, StallingRelay


async def wait_for(condition: object, seconds: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_run_that_fails_reports_its_error_and_asks_the_service_to_stop(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    database.upgrade(engine, "0001")
    engine.dispose()
    failures: list[BaseException] = []
    embedded = EmbeddedWorker(
        Worker(load_settings(environ={"DATABASE_URL": url})), on_failure=failures.append
    )
    embedded.start()
    await wait_for(lambda: failures)
    assert isinstance(failures[0], SchemaOutdatedError)
    assert embedded.error is failures[0]
    assert not embedded.running
    await asyncio.wait_for(embedded.stop(), 1)


async def test_a_run_that_ends_on_its_own_asks_the_service_to_stop(tmp_path: Path) -> None:
    settings = load_settings(environ={"DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}"})
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    outbox.dispose()
    failures: list[BaseException] = []
    # --once ends when the outbox is empty: in a service that is a worker gone.
    embedded = EmbeddedWorker(Worker(settings, once=True), on_failure=failures.append)
    embedded.start()
    await wait_for(lambda: failures)
    assert isinstance(embedded.error, RuntimeError)
    assert embedded.stats is not None


async def test_a_stop_gives_back_a_stalled_send_within_the_grace(tmp_path: Path) -> None:
    async with StallingRelay(StallAt.DOT) as relay:
        settings = load_settings(
            environ={
                "DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}",
                "MAILROOM_TRANSPORT": "smtp",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(relay.port),
                "WORKER_SHUTDOWN_GRACE": "0.3",
                "WORKER_POLL_INTERVAL": "0.01",
            }
        )
        outbox = Outbox(settings)
        try:
            message_pk = outbox.send(Message(to=["ada@example.com"], subject="s", text="t"))
            failures: list[BaseException] = []
            embedded = EmbeddedWorker(Worker(settings), on_failure=failures.append)
            embedded.start()
            await asyncio.wait_for(relay.stalled.wait(), 10)
            started = time.monotonic()
            await embedded.stop()
            took = time.monotonic() - started
            assert failures == []  # a stop asked for is no failure
            assert embedded.error is None
            assert embedded.stats is not None
            assert embedded.stats.released == 1
            assert 0.25 <= took < EmbeddedWorker.longest_stop(settings)
            assert took < 3
            detail = outbox.get(message_pk)
            assert detail is not None
            assert detail.status == Status.QUEUED
        finally:
            outbox.dispose()
