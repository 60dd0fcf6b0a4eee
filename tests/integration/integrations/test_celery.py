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
import signal
import sqlite3
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

from mailroom.config import SETTING_NAMES, Settings, load_settings
from mailroom.errors import SchemaOutdatedError
from mailroom.integrations import celery as integration
from mailroom.integrations.celery import drain, drain_outbox, use_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.celery_processes import TESTS, Processes, drain_results, wait_until
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

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

    def statuses(self) -> Counter[str]:
        """Messages by status, with ``leased`` for those that still hold a lease."""
        query = select(messages.c.status, messages.c.lease_token)
        with self.outbox.engine.connect() as connection:
            rows = connection.execute(query).all()
        found = Counter(str(status) for status, _ in rows)
        found["leased"] = sum(token is not None for _, token in rows)
        return found

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
    """Ours, less any Mailroom setting, plus the outbox's and the test app's. Less Django's
    too: with DJANGO_SETTINGS_MODULE (set once a test here has set the Django project up),
    Celery's Django fixup would set the project up in the worker, and its drains would take
    the project's settings instead of these."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES
        and not name.startswith(("EMAIL_", "MAILROOM_", "CELERY_", "DJANGO_"))
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


# -- Celery's soft time limit ends a drain as max_seconds does ---------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "setup",
    [{"WORKER_SHUTDOWN_GRACE": "0.5", "EMAIL_TIMEOUT": "120"}],
    indirect=True,
    ids=["short-grace"],
)
@pytest.mark.timeout(120)
def test_the_soft_time_limit_stops_a_drain_held_by_a_hung_relay_and_gives_its_messages_back(
    setup: Setup, client: Celery
) -> None:
    setup.send(3, "s")
    # The relay does not answer MAIL for a minute: every send hangs well past the soft limit.
    setup.sink.delays["MAIL"] = 60.0
    worker = setup.processes.celery_worker("celery", setup.queue)
    started = time.monotonic()
    hung = client.send_task(
        "mailroom.drain", kwargs={"max_seconds": 60.0}, queue=setup.queue, soft_time_limit=2
    )
    # Ended by the soft limit soon after 2 s (sends' grace 0.5 s), not by max_seconds or the
    # relay: the task returns its counts rather than failing.
    result = hung.get(timeout=30)
    assert time.monotonic() - started < 25
    assert result["ended"] == "soft_time_limit", result
    assert set(result) == RESULT_KEYS
    assert result["sent"] == 0
    assert result["released"] == 3, result
    assert 2 <= result["seconds"] < 10, result
    # Given back, due at once, no lease held: not left 'sending' until WORKER_LEASE_SECONDS.
    statuses = setup.statuses()
    assert statuses[Status.QUEUED] == 3, statuses
    assert statuses["leased"] == 0, statuses

    # The same prefork child drains them at once once the relay answers again, and keeps no
    # database thread of an ended drain.
    setup.sink.delays.clear()
    again = client.send_task("mailroom.drain", queue=setup.queue).get(timeout=30)
    assert again["ended"] == "drained"
    assert again["sent"] == 3, again
    assert setup.sent_count() == 3

    def child_threads() -> list[str]:
        names = client.send_task("tests.thread_names", queue=setup.queue).get(timeout=30)
        assert isinstance(names, list)
        return names

    # A thread told to end takes a moment to; one left behind stays for good.
    wait_until(lambda: "mailroom-db" not in child_threads(), 5, "the drains' database threads")
    assert setup.processes.stop(worker) == 0, worker.output()
    log = worker.output()
    assert "Exception in callback" not in log
    assert "SoftTimeLimitExceeded" not in log


def mailroom_db_threads() -> int:
    return sum(thread.name == "mailroom-db" for thread in threading.enumerate())


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_in_a_prefork_child_the_soft_time_limit_stops_the_drain_on_either_event_loop(
    event_loop: str, database_url: str, smtp_server_factory: ServerFactory
) -> None:
    """The task run in this process as billiard runs it in a prefork child, where SIGUSR1 is
    the soft time limit, on each event loop a drain may run on."""
    from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler  # noqa: PLC0415

    handler = ScriptedHandler()
    server = smtp_server_factory(handler=handler)
    handler.delays["MAIL"] = 60.0  # a relay that hangs
    settings = load_settings(
        environ={
            "DATABASE_URL": database_url,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_TIMEOUT": "120",
            "WORKER_EVENT_LOOP": event_loop,
            "WORKER_SHUTDOWN_GRACE": "0.5",
        }
    )
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    outbox.send_many([Message(to=[f"h{i}@example.com"], subject="h", text="h") for i in range(3)])
    threads_before = mailroom_db_threads()
    previous = signal.signal(SIG_SOFT_TIMEOUT, soft_timeout_sighandler)
    drained = threading.Event()

    def soft_limit() -> None:
        # As billiard's pool does when the limit is up: once all three sends hang at the relay.
        while len(handler.behind_mail) < 3:
            if drained.wait(0.02):
                return
        os.kill(os.getpid(), SIG_SOFT_TIMEOUT)

    limiter = threading.Thread(target=soft_limit)
    use_settings(settings)
    try:
        limiter.start()
        result = drain(max_seconds=15.0)
        # Celery's handler is back for whatever runs next in the child.
        assert signal.getsignal(SIG_SOFT_TIMEOUT) is soft_timeout_sighandler
    finally:
        drained.set()
        limiter.join(5)
        signal.signal(SIG_SOFT_TIMEOUT, previous)
        use_settings(None)
    try:
        assert result["ended"] == "soft_time_limit", result
        assert result["released"] == 3, result
        assert result["seconds"] < 5, result
        counts = {status: n for status, n in outbox.counts().items() if n}
        assert counts == {Status.QUEUED: 3}, counts
        with outbox.engine.connect() as connection:
            leases = connection.execute(select(messages.c.lease_token)).scalars().all()
        assert leases == [None, None, None]
        wait_until(
            lambda: mailroom_db_threads() <= threads_before, 5, "the drain's database thread"
        )
    finally:
        outbox.dispose()


def test_a_drain_that_fails_at_start_up_leaves_no_database_thread_behind(
    database_url: str, tmp_path: Path
) -> None:
    """A Celery pool's child runs drain after drain: one that fails (an outbox never
    migrated) must not leave its database thread running in it."""
    if database_url.startswith("sqlite"):
        sqlite3.connect(tmp_path / "outbox.db").close()  # there, but without the tables
    settings = load_settings(environ={"DATABASE_URL": database_url})
    threads_before = mailroom_db_threads()
    for _ in range(3):
        with pytest.raises(SchemaOutdatedError, match="DATABASE_URL"):
            drain_outbox(settings, max_seconds=5.0)
    wait_until(lambda: mailroom_db_threads() <= threads_before, 5, "the drains' database threads")


# -- in a Django project, Django's settings ----------------------------------------------------


def test_in_a_django_project_a_drain_takes_django_settings_and_delivers_its_outbox(
    django_project: list[str],
    smtp_server: SMTPTestServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a Celery worker of a Django project (Celery's Django fixup has run
    ``django.setup()``), a drain takes Mailroom's settings from Django's: the outbox in the
    Django database, the relay of EMAIL_HOST/EMAIL_PORT; no mailroom.toml, no environment."""
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415

    # What a settings file or the environment would say is never read.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'not-this.db'}")
    use_settings(None)
    try:
        with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": "default"}):
            django_settings: Settings = current_settings().settings
            assert integration._worker_settings() is django_settings
            assert send_mail("Hi", "from the shop", None, ["ada@example.com"]) == 1
            result = drain.apply(kwargs={"max_seconds": 10.0}).get(timeout=30)
        # (Other tests of the session may have left mail in the project's outbox.)
        assert result["sent"] >= 1, result
        assert ["ada@example.com"] in [r.rcpt_tos for r in smtp_server.handler.received]
        assert not (tmp_path / "not-this.db").exists()
        assert not (tmp_path / "mailroom.db").exists()
    finally:
        use_settings(None)


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
