"""The worker embedded in ``mailroom serve``: it delivers what the outbox holds, and a SIGTERM
with messages in flight loses none (a real serve process, a real aiosmtpd relay)."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailroom.config import load_settings
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import attempts
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.service import ServiceProcess
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)
SERVE_STATS = re.compile(r"^worker \S+: sent (\d+), ", re.MULTILINE)


@dataclass
class Relay:
    settings_env: dict[str, str]
    outbox: Outbox
    handler: ScriptedHandler
    server: SMTPTestServer

    def arrivals(self) -> list[bytes]:
        with self.handler.lock:
            found = [MESSAGE_ID.search(r.data) for r in self.handler.received]
        return [m[1] if m else b"?" for m in found]


@pytest.fixture
def relay(tmp_path: Path, smtp_server_factory: ServerFactory) -> Iterator[Relay]:
    handler = ScriptedHandler()
    server = smtp_server_factory(handler=handler)
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "MAILROOM_TRANSPORT": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "WORKER_POLL_INTERVAL": "0.05",
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    yield Relay(env, outbox, handler, server)
    outbox.dispose()


def queue(outbox: Outbox, count: int) -> None:
    outbox.send_many(
        [Message(to=[f"u{i}@example.com"], subject=f"n{i}", text="hello") for i in range(count)]
    )


def wait_until(condition: object, what: str, seconds: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_the_embedded_worker_delivers_what_was_committed(relay: Relay, tmp_path: Path) -> None:
    with ServiceProcess(relay.settings_env, cwd=tmp_path) as service:
        assert f"mode: relaying through 127.0.0.1:{relay.server.port}" in service.stdout
        queue(relay.outbox, 5)
        wait_until(lambda: relay.outbox.counts()[Status.SENT] == 5, "all 5 are sent")
    assert service.returncode == 0
    assert len(relay.arrivals()) == 5
    with relay.outbox.engine.connect() as connection:
        sent = connection.execute(
            select(func.count()).where(attempts.c.outcome == "sent")
        ).scalar_one()
    assert sent == 5
    stats = SERVE_STATS.search(service.stdout)
    assert stats is not None, service.stdout
    assert int(stats[1]) == 5


def test_sigterm_with_messages_in_flight_loses_none(relay: Relay, tmp_path: Path) -> None:
    total = 200
    queue(relay.outbox, total)
    relay.handler.delays["DATA"] = 0.1  # each message 0.1 s at the relay: a long run
    env = {**relay.settings_env, "WORKER_CONCURRENCY": "2", "WORKER_BATCH_SIZE": "5"}
    with ServiceProcess(env, cwd=tmp_path) as service:
        wait_until(lambda: len(relay.arrivals()) >= 4, "some messages arrive")
        signalled = time.monotonic()
        assert service.stop(timeout=20) == 0
        stopped_after = time.monotonic() - signalled
    assert stopped_after < 10.0, service.output
    assert "Traceback" not in service.output
    counts = relay.outbox.counts()
    assert counts[Status.SENDING] == 0  # what was claimed was given back
    assert counts[Status.SENT] + counts[Status.QUEUED] == total
    assert 0 < counts[Status.SENT] < total
    arrived = relay.arrivals()
    assert counts[Status.SENT] == len(arrived)
    assert max(Counter(arrived).values()) == 1
    stats = SERVE_STATS.search(service.stdout)
    assert stats is not None, service.stdout
    assert int(stats[1]) == counts[Status.SENT]

    # The rest goes out with the next start, and nothing twice.
    relay.handler.delays.clear()
    with ServiceProcess(relay.settings_env, cwd=tmp_path):
        wait_until(lambda: relay.outbox.counts()[Status.SENT] == total, "all are sent")
    arrived = relay.arrivals()
    assert len(arrived) == total
    assert max(Counter(arrived).values()) == 1


def test_a_second_sigterm_ends_the_grace_at_once(relay: Relay, tmp_path: Path) -> None:
    queue(relay.outbox, 1)
    relay.handler.delays["DATA"] = 60  # the relay sits on the message
    env = {**relay.settings_env, "WORKER_SHUTDOWN_GRACE": "60"}
    with ServiceProcess(env, cwd=tmp_path) as service:
        wait_until(lambda: relay.outbox.counts()[Status.SENDING] == 1, "the send starts")
        time.sleep(0.3)  # into DATA
        service.signal(signal.SIGTERM)
        time.sleep(1.0)
        assert service.returncode is None  # within its 60 s grace, the send may still finish
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        assert service.wait(15) == 0
        assert time.monotonic() - signalled < 10
    counts = relay.outbox.counts()
    assert counts[Status.QUEUED] == 1  # given back, to be sent by the next worker
    assert counts[Status.SENDING] == 0
