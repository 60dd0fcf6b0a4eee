"""``mailroom serve`` with its embedded worker and a separate ``mailroom worker`` on the same
database: messages enqueued through the API while both run reach a real SMTP relay exactly
once each (counted per Message-ID), and every row ends ``sent``. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from mailroom.access.apikeys import create_api_key
from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.schema import attempts
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ApiKeyScope, Status
from support.processes import Spawn
from support.service import ServiceProcess
from support.smtp_server import ScriptedHandler, ServerFactory
from support.worker_process import worker_args, worker_env

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)
SENT = re.compile(r"^worker \S+: sent (\d+), ", re.MULTILINE)
"""The summary ``serve`` and ``worker`` both print when they stop."""

TOTAL = 300
BATCH = 50


def message_ids(handler: ScriptedHandler) -> list[bytes]:
    with handler.lock:
        found = [MESSAGE_ID.search(r.data) for r in handler.received]
    return [m[1] if m else b"?" for m in found]


def test_the_embedded_worker_and_a_separate_worker_deliver_without_a_duplicate(
    database_url: str, tmp_path: Path, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    handler = ScriptedHandler()
    handler.delays["DATA"] = 0.005  # a relay that takes its time, so both workers get turns
    relay = smtp_server_factory(handler=handler)
    env = {
        "DATABASE_URL": database_url,
        "MAILROOM_TRANSPORT": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(relay.port),
        "DEFAULT_FROM_EMAIL": "Acme <noreply@acme.example>",
        "WORKER_POLL_INTERVAL": "0.05",
        "WORKER_BATCH_SIZE": "10",
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    with outbox.engine.begin() as connection:
        _, key = create_api_key(connection, name="app", scope=ApiKeyScope.SEND, now=time.time())
    worker = spawn(worker_args(), worker_env(env))
    try:
        with ServiceProcess(env, cwd=tmp_path) as service:
            service.watch.add(key)
            ids: list[int] = []
            with service.client(key) as client:
                for start in range(0, TOTAL, BATCH):
                    answer = client.post(
                        "/api/v1/messages/batch",
                        json={
                            "messages": [
                                {"to": [f"u{n}@example.com"], "subject": f"n{n}", "text": "hi"}
                                for n in range(start, start + BATCH)
                            ]
                        },
                    )
                    assert answer.status_code == 201, answer.text
                    ids += answer.json()["ids"]
            assert len(set(ids)) == TOTAL
            deadline = time.monotonic() + 120
            while outbox.counts()[Status.SENT] < TOTAL:
                assert worker.poll() is None, worker.communicate()
                assert time.monotonic() < deadline, f"not all sent: {outbox.counts()}"
                time.sleep(0.1)
        assert service.returncode == 0
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    finally:
        counts = outbox.counts()
        with outbox.engine.connect() as connection:
            sent_attempts = connection.execute(
                select(func.count()).where(attempts.c.outcome == "sent")
            ).scalar_one()
        outbox.dispose()
    assert worker.returncode == 0, err.decode()
    assert b"Traceback" not in err, err.decode()
    assert "Traceback" not in service.output, service.output

    assert counts[Status.SENT] == TOTAL
    assert sum(counts.values()) == TOTAL
    assert sent_attempts == TOTAL
    arrived = Counter(message_ids(handler))
    assert b"?" not in arrived
    assert len(arrived) == TOTAL
    assert max(arrived.values()) == 1, [m for m, n in arrived.items() if n > 1]

    # Both took part: the test is of two workers, not of one that happened to win every claim.
    by_serve = SENT.search(service.stdout)
    by_worker = SENT.search(out.decode())
    assert by_serve is not None, service.stdout
    assert by_worker is not None, out.decode()
    assert int(by_serve[1]) > 0
    assert int(by_worker[1]) > 0
    assert int(by_serve[1]) + int(by_worker[1]) == TOTAL
