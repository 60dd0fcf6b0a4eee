"""The Celery integration with real parts: a Celery worker and Celery Beat as processes of
their own (``celery -A support.celery_app ...``), a real Redis broker, ``mailroom worker`` as a
process, SQLite and PostgreSQL outboxes, and aiosmtpd on loopback keeping the Message-ID of
every message it accepts.

Each test has a Redis queue of its own (and the tests a Redis database of their own), so
neither tests nor a developer's other Celery work take each other's tasks.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.smtp import SMTP, Envelope, Session
from celery import Celery
from sqlalchemy import func, select

from mailroom.config import SETTING_NAMES, load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.celery_processes import TESTS, Processes, drain_results, wait_until
from support.smtp_server import ScriptedHandler, ServerFactory

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)
RESULT_KEYS = {
    "worker",
    "sent",
    "deferred",
    "failed",
    "paused",
    "released",
    "suppressed",
    "possible_duplicates",
    "seconds",
    "ended",
}


@dataclass
class SinkHandler(ScriptedHandler):
    """Keeps the Message-ID of each message accepted; holds each until ``gate`` is open."""

    arrivals: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        await self._pause("DATA")
        found = MESSAGE_ID.search(envelope.original_content or b"")
        with self.lock:
            self.arrivals.append(found[1].decode() if found else "?")
        return "250 2.0.0 OK"


@dataclass
class Setup:
    outbox: Outbox
    sink: SinkHandler
    queue: str
    processes: Processes

    def send(self, count: int, tag: str) -> None:
        self.outbox.send_many(
            [
                Message(to=[f"{tag}{i}@example.com"], subject=f"{tag} {i}", text="hello " * 20)
                for i in range(count)
            ],
            stream="bulk",
        )

    def stored_message_ids(self) -> set[str]:
        with self.outbox.engine.connect() as connection:
            return set(connection.execute(select(messages.c.message_id)).scalars())

    def sent_count(self) -> int:
        return self.outbox.counts().get(Status.SENT, 0)

    def lease_holders(self) -> int:
        """How many workers (drains included) hold claimed messages now."""
        query = select(func.count(messages.c.lease_token.distinct())).where(
            messages.c.status == Status.SENDING
        )
        with self.outbox.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def sent_by_worker(self) -> Counter[str]:
        """From the attempts log: messages each worker (or drain) sent."""
        query = (
            select(attempts.c.worker, func.count())
            .where(attempts.c.outcome == "sent")
            .group_by(attempts.c.worker)
        )
        with self.outbox.engine.connect() as connection:
            return Counter({str(w): int(n) for w, n in connection.execute(query)})

    def attempts_per_message(self) -> Counter[int]:
        query = (
            select(func.count())
            .select_from(attempts)
            .where(attempts.c.outcome == "sent")
            .group_by(attempts.c.message_pk)
        )
        with self.outbox.engine.connect() as connection:
            return Counter(int(n) for n in connection.execute(query).scalars())


def process_env(
    settings: dict[str, str], redis_url: str, queue: str, **extra: str
) -> dict[str, str]:
    """Ours, less any Mailroom setting, plus the outbox's and the test app's."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith(("EMAIL_", "MAILROOM_", "CELERY_"))
    }
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **inherited,
        **settings,
        "PYTHONPATH": path,
        "TESTAPP_BROKER_URL": redis_url,
        "TESTAPP_QUEUE": queue,
        **extra,
    }


@pytest.fixture
def setup(
    database_url: str,
    redis_url: str,
    smtp_server_factory: ServerFactory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Setup]:
    sink = SinkHandler()
    server = smtp_server_factory(handler=sink)
    settings = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        # Small batches, so every worker and drain gets a share of the outbox.
        "WORKER_BATCH_SIZE": "50",
    }
    outbox = Outbox(load_settings(environ=settings))
    database.upgrade(outbox.engine)
    queue = f"mailroom-test-{secrets.token_hex(4)}"
    extra: dict[str, str] = getattr(request, "param", {})
    processes = Processes(tmp_path, process_env(settings, redis_url, queue, **extra))
    try:
        yield Setup(outbox, sink, queue, processes)
    finally:
        sink.gate.set()  # a drain held at the relay can finish its warm shutdown
        processes.stop_all()
        outbox.dispose()
        forget_queue(redis_url, queue)


def forget_queue(redis_url: str, queue: str) -> None:
    """Drop the test's queue from Redis: the ticks nobody ran, kombu's binding of it."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def client(redis_url: str) -> Iterator[Celery]:
    """A Celery client in the test process: sends drains and reads their results."""
    app = Celery("mailroom_test_client", broker=redis_url, backend=redis_url)
    app.conf.broker_connection_retry_on_startup = True
    yield app
    app.close()


# -- Beat drives the drain --------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [{"TESTAPP_DRAIN_EVERY": "1", "TESTAPP_DRAIN_MAX_SECONDS": "5"}],
    indirect=True,
    ids=["every-1s"],
)
def test_beat_runs_drain_every_second_and_it_delivers_the_outbox(setup: Setup) -> None:
    setup.send(30, "early")
    processes = setup.processes
    worker = processes.celery_worker("celery", setup.queue)
    beat = processes.celery_beat()
    wait_until(
        lambda: setup.sent_count() == 30, 45, "the first 30 messages", processes.check_running
    )
    # Mail queued later goes out on a later tick.
    setup.send(20, "late")
    wait_until(
        lambda: setup.sent_count() == 50, 30, "the next 20 messages", processes.check_running
    )

    assert processes.stop(beat) == 0, beat.output()
    assert processes.stop(worker) == 0, worker.output()
    ticks = beat.output().count("Sending due task mailroom-drain-")
    assert ticks >= 2, beat.output()
    results = drain_results(worker.output())
    assert len(results) >= 2, worker.output()
    assert all(set(result) == RESULT_KEYS for result in results), results
    assert sum(result["sent"] for result in results) == 50, results
    assert all(result["failed"] == result["deferred"] == 0 for result in results), results
    assert {result["ended"] for result in results} <= {"drained", "max_seconds"}

    arrived = Counter(setup.sink.arrivals)
    assert len(setup.sink.arrivals) == 50
    assert max(arrived.values()) == 1
    assert set(arrived) == setup.stored_message_ids()
    assert sum(setup.sent_by_worker().values()) == 50
    assert all(":drain-" in name for name in setup.sent_by_worker())


# -- one drain's result and its bounds ------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("setup", [{}], indirect=True, ids=["no-beat"])
def test_drain_returns_its_counts_and_stops_at_its_bounds(setup: Setup, client: Celery) -> None:
    total = 300
    setup.send(total, "b")
    # 4 connections x 20 messages a second: the whole outbox takes a drain over 3 s.
    setup.sink.delays["DATA"] = 0.05
    worker = setup.processes.celery_worker("celery", setup.queue)

    def drain(**kwargs: Any) -> dict[str, Any]:
        result = client.send_task("mailroom.drain", kwargs=kwargs, queue=setup.queue)
        value = result.get(timeout=60)
        assert isinstance(value, dict)
        return value

    by_count = drain(max_messages=10)
    assert by_count["ended"] == "max_messages"
    assert 10 <= by_count["sent"] < 50
    # What it had claimed beyond that went back to the queue, unsent and due at once.
    assert by_count["released"] > 0
    by_time = drain(max_seconds=1.0)
    assert by_time["ended"] == "max_seconds"
    assert 0 < by_time["sent"] < total - by_count["sent"]
    # Bounded: it stopped claiming at 1 s, and its sends in flight then took 50 ms each.
    assert by_time["seconds"] < 5
    rest = drain()
    assert rest["ended"] == "drained"
    assert by_count["sent"] + by_time["sent"] + rest["sent"] == total
    for result in (by_count, by_time, rest):
        assert set(result) == RESULT_KEYS
        assert result["failed"] == result["deferred"] == result["suppressed"] == 0
    # Nothing is due: a drain returns at once, having done nothing.
    idle = drain()
    assert idle["ended"] == "drained"
    assert idle["sent"] == idle["released"] == 0

    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        drain(max_seconds=-1)

    assert setup.processes.stop(worker) == 0, worker.output()
    arrived = Counter(setup.sink.arrivals)
    assert len(setup.sink.arrivals) == total
    assert max(arrived.values()) == 1
    assert setup.sent_count() == total


# -- overlapping drains and a worker: 5,000 messages, each once -------------------------------


@pytest.mark.parametrize(
    "setup",
    [{"TESTAPP_DRAIN_EVERY": "1", "TESTAPP_DRAIN_MAX_SECONDS": "10"}],
    indirect=True,
    ids=["every-1s"],
)
@pytest.mark.timeout(120)
def test_two_overlapping_drains_and_a_worker_send_5000_messages_once(setup: Setup) -> None:
    total = 5000
    setup.send(total, "m")
    processes = setup.processes
    # The relay holds every message until two drains and the worker hold claimed messages:
    # all three take part, at once, however fast each starts.
    setup.sink.gate.clear()
    worker = processes.celery_worker("celery", setup.queue, concurrency=2)
    beat = processes.celery_beat()
    mailroom_worker = processes.mailroom_worker()
    wait_until(
        lambda: setup.lease_holders() >= 3, 45, "two drains and the worker", processes.check_running
    )
    opened = time.monotonic()
    setup.sink.gate.set()
    wait_until(lambda: setup.sent_count() == total, 55, "5,000 messages", processes.check_running)
    elapsed = time.monotonic() - opened

    assert processes.stop(beat) == 0, beat.output()
    assert processes.stop(worker) == 0, worker.output()
    assert processes.stop(mailroom_worker) == 0, mailroom_worker.output()

    arrived = Counter(setup.sink.arrivals)
    duplicates = sum(n - 1 for n in arrived.values())
    print(
        f"\n5,000 messages through 2 overlapping drains and a worker: {elapsed:.1f} s, "
        f"duplicates {duplicates}, sent by {dict(setup.sent_by_worker())}"
    )
    assert duplicates == 0
    assert len(setup.sink.arrivals) == total
    assert set(arrived) == setup.stored_message_ids()
    assert setup.attempts_per_message() == Counter({1: total})

    by_worker = setup.sent_by_worker()
    drains = {name: n for name, n in by_worker.items() if ":drain-" in name}
    others = {name: n for name, n in by_worker.items() if ":drain-" not in name}
    assert len(drains) >= 2, by_worker
    assert len(others) == 1, by_worker
    assert all(n > 0 for n in by_worker.values())
    results = drain_results(worker.output())
    assert sum(result["sent"] for result in results) == sum(drains.values())
