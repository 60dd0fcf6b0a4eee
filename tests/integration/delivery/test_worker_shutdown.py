"""WORKER_SHUTDOWN_GRACE in one process: a stop lets sends in flight finish within the grace,
then aborts the rest and gives their messages back, against a real aiosmtpd server or a relay
that stopped reading (the worker runs in the test's event loop; the fault tests run it as a
process and send it SIGTERM)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from mailroom.config import Settings, load_settings
from mailroom.delivery.worker import Worker
from mailroom.errors import SettingsError
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from smtp_server import SMTPTestServer
from stalling_relay import StallAt, StallingRelay


def settings_for(database_url: str, port: int, **extra: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "WORKER_POLL_INTERVAL": "0.01",
        **extra,
    }
    return load_settings(environ=environ)


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(settings_for(database_url, 25))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def row_of(engine: Engine, message_pk: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(messages).where(messages.c.id == message_pk)).one()


def outcomes_of(engine: Engine, message_pk: int) -> list[str]:
    with engine.connect() as connection:
        query = select(attempts.c.outcome).where(attempts.c.message_pk == message_pk)
        return list(connection.execute(query).scalars())


async def stop_and_wait(worker: Worker, task: asyncio.Task[Any], within: float) -> float:
    started = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, within)
    return time.monotonic() - started


async def test_a_send_that_ends_within_the_grace_is_finished(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.delays["DATA"] = 0.6
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hello")
    settings = settings_for(database_url, smtp_server.port, WORKER_SHUTDOWN_GRACE="5")
    worker = Worker(settings, concurrency=1, rng=random.Random(0))
    task = asyncio.create_task(worker.run())
    while row_of(outbox.engine, message_pk).status != "sending":
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    took = await stop_and_wait(worker, task, within=5)
    assert took < 2
    assert row_of(outbox.engine, message_pk).status == "sent"
    assert len(smtp_server.scripted.received) == 1


async def test_a_send_still_running_after_the_grace_is_aborted_and_requeued(
    outbox: Outbox, database_url: str
) -> None:
    message_pk = outbox.send(
        to=["ada@example.com", "bob@example.com"], subject="figures", text="figures\n" * 600_000
    )
    async with StallingRelay(StallAt.CONTENT) as relay:
        settings = settings_for(
            database_url, relay.port, EMAIL_TIMEOUT="600", WORKER_SHUTDOWN_GRACE="0.5"
        )
        worker = Worker(settings, concurrency=2, rng=random.Random(0))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(relay.stalled.wait(), 10)
        took = await stop_and_wait(worker, task, within=5)
    assert 0.45 <= took < 2
    assert worker.stats.released == 1
    row = row_of(outbox.engine, message_pk)
    assert (row.status, row.attempts, row.lease_token) == ("queued", 0, None)
    assert outcomes_of(outbox.engine, message_pk) == ["interrupted", "interrupted"]


async def test_a_grace_of_zero_aborts_at_once(outbox: Outbox, database_url: str) -> None:
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hello")
    async with StallingRelay(StallAt.MAIL) as relay:
        settings = settings_for(
            database_url, relay.port, EMAIL_TIMEOUT="600", WORKER_SHUTDOWN_GRACE="0"
        )
        worker = Worker(settings, concurrency=1, rng=random.Random(0))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(relay.stalled.wait(), 10)
        took = await stop_and_wait(worker, task, within=5)
    assert took < 1
    assert row_of(outbox.engine, message_pk).status == "queued"


def test_a_negative_grace_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"WORKER_SHUTDOWN_GRACE": "-1"})
    assert info.value.setting == "WORKER_SHUTDOWN_GRACE"


def test_the_grace_defaults_to_ten_seconds() -> None:
    assert load_settings(environ={}).WORKER_SHUTDOWN_GRACE == 10.0
