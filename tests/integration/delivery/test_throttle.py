"""Throttling, measured at a real SMTP server: bursts with pauses, and a shared rate limit."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailroom.config import load_settings
from mailroom.delivery.throttle import Throttle
from mailroom.delivery.worker import Worker
from mailroom.errors import SettingsError
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import throttle_windows
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.processes import Spawn
from support.smtp_server import ScriptedHandler, ServerFactory


@dataclass
class TimedHandler(ScriptedHandler):
    """Records when each message was accepted."""

    times: list[float] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        self.times.append(time.monotonic())
        return reply


def bulk(count: int) -> list[Message]:
    return [Message(to=[f"u{i}@example.com"], subject=f"n{i}", text="hi") for i in range(count)]


def bursts(times: list[float], gap: float) -> list[list[float]]:
    """Split acceptance times into runs separated by more than ``gap`` seconds."""
    runs: list[list[float]] = [[times[0]]]
    for earlier, later in itertools.pairwise(times):
        if later - earlier > gap:
            runs.append([])
        runs[-1].append(later)
    return runs


async def test_bursts_of_100_separated_by_the_pause(
    database_url: str, smtp_server_factory: ServerFactory
) -> None:
    handler = TimedHandler()
    server = smtp_server_factory(handler=handler)
    settings = load_settings(
        environ={
            "DATABASE_URL": database_url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_BURST": "100",
            "EMAIL_BURST_PAUSE": "2",
        }
    )
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    outbox.send_many(bulk(300), stream="bulk")

    stats = await Worker(settings, once=True, concurrency=4).run()

    assert stats.sent == 300
    runs = bursts(sorted(handler.times), gap=1.0)
    assert [len(run) for run in runs] == [100, 100, 100]
    for before, after in itertools.pairwise(runs):
        assert after[0] - before[-1] >= 2.0
    outbox.dispose()


async def test_rate_limit_holds_with_two_worker_processes(
    database_url: str, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    handler = TimedHandler()
    server = smtp_server_factory(handler=handler)
    environ = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_RATE_LIMIT": "10/s",
    }
    outbox = Outbox(load_settings(environ=environ))
    database.upgrade(outbox.engine)
    outbox.send_many(bulk(400), stream="bulk")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "MAILROOM_"))}
    args = [sys.executable, "-m", "mailroom", "worker", "--concurrency", "2"]
    workers = [spawn(args, {**env, **environ}) for _ in range(2)]
    try:
        # The 30 seconds are counted from the first delivery, not from the spawn: two workers
        # starting on a busy machine may take seconds to import and connect.
        started = time.monotonic()
        while not handler.times and time.monotonic() - started < 60:
            await asyncio.sleep(0.05)
        assert handler.times, "no worker delivered anything within a minute"
        await asyncio.sleep(31)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30) for worker in workers]

    # SIGTERM: both stopped cleanly and gave back what they held.
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
        assert b"worker" in out
        assert b"Traceback" not in err, err.decode()
    counts = outbox.counts()
    assert counts[Status.SENDING] == 0
    assert counts[Status.SENT] == len(handler.times)

    times = sorted(handler.times)
    start = times[0]
    in_30_seconds = [t for t in times if t - start < 30.0]
    assert 270 <= len(in_30_seconds) <= 330, len(in_30_seconds)
    # Both workers took part, so the limit held across processes, not per process.
    sent_by_worker = [int(re.search(rb"sent (\d+)", out)[1]) for out, _ in outputs]  # type: ignore[index]
    assert all(sent > 20 for sent in sent_by_worker), sent_by_worker
    assert sum(sent_by_worker) == len(times)
    outbox.dispose()


@pytest.mark.parametrize("value", ["10", "ten/s", "10/fortnight", "0/s"])
def test_bad_rate_limit_names_the_setting(value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={"EMAIL_RATE_LIMIT": value})
    assert caught.value.setting == "EMAIL_RATE_LIMIT"


async def test_many_first_grants_at_once_on_a_fresh_database(database_url: str) -> None:
    """The throttle rows are created by whichever grant comes first; the others, in flight at
    the same moment in other threads and engines, must wait for them, not miss them."""
    settings = load_settings(
        environ={"DATABASE_URL": database_url, "EMAIL_RATE_LIMIT": "1000/s, 100000/day"}
    )
    engines = [create_outbox_engine(database_url) for _ in range(3)]
    database.upgrade(engines[0])
    throttles = [Throttle(engine, settings) for engine in engines]
    granted = await asyncio.gather(*(t.acquire() for t in throttles for _ in range(8)))
    assert all(granted)
    with engines[0].connect() as connection:
        day = connection.execute(
            select(throttle_windows.c.granted).where(throttle_windows.c.name == "86400s")
        ).scalar_one()
    assert day == 24
    for engine in engines:
        engine.dispose()
