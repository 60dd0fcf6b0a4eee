"""Workers killed, doubled and overloaded, with a real SMTP sink counting what arrives.

Workers run as real processes (``python -m mailroom worker``), as in production, so
``kill -9`` leaves exactly what a crash leaves: leases held, outcomes not yet recorded.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from mailroom.config import Settings, load_settings
from mailroom.message import Message
from mailroom.outbox import database, queries
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.processes import Spawn
from support.smtp_server import ScriptedHandler, ServerFactory
from support.worker_process import worker_args, worker_env

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass
class SinkHandler(ScriptedHandler):
    """Keeps only the Message-ID and arrival time of each message: cheap at high volume."""

    arrivals: list[tuple[float, str]] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        found = MESSAGE_ID.search(envelope.original_content or b"")
        self.arrivals.append((time.monotonic(), found[1].decode() if found else "?"))
        return "250 2.0.0 OK"


def stored_message_ids(outbox: Outbox) -> set[str]:
    with outbox.engine.connect() as connection:
        return set(connection.execute(select(messages.c.message_id)).scalars())


def prepare(database_url: str, port: int, **extra: str) -> tuple[dict[str, str], Outbox]:
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        **extra,
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    return env, outbox


def bulk(count: int, offset: int = 0) -> list[Message]:
    return [
        Message(to=[f"u{i}@example.com"], subject=f"n{i}", text="hello " * 50)
        for i in range(offset, offset + count)
    ]


async def test_kill_9_at_random_moments_loses_nothing(
    database_url: str, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    handler = SinkHandler()
    server = smtp_server_factory(handler=handler)
    batch, concurrency = 50, 4
    env, outbox = prepare(
        database_url,
        server.port,
        WORKER_LEASE_SECONDS="2",
        WORKER_BATCH_SIZE=str(batch),
        WORKER_CONCURRENCY=str(concurrency),
    )
    total = 4000
    outbox.send_many(bulk(total), stream="bulk")
    rng = random.Random(20261121)
    logs: list[bytes] = []
    kills = 0
    for _ in range(4):
        worker = spawn(worker_args(), worker_env(env))
        await asyncio.sleep(rng.uniform(0.8, 2.0))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        logs.append(worker.communicate(timeout=30)[1])
    assert kills >= 3
    assert len(handler.arrivals) < total, "the workers finished before they were killed"

    await asyncio.sleep(2.5)  # let the dead workers' leases expire
    final = spawn(worker_args("--once"), worker_env(env))
    _, err = final.communicate(timeout=300)
    logs.append(err)
    assert final.returncode == 0, err.decode()

    counts = outbox.counts()
    assert counts[Status.SENDING] == 0
    assert counts[Status.SENT] == total
    arrived = Counter(message_id for _, message_id in handler.arrivals)
    assert set(arrived) == stored_message_ids(outbox)  # every message reached the sink
    duplicates = {message_id for message_id, n in arrived.items() if n > 1}
    # Only the 250→commit window can duplicate: at most one unrecorded batch (plus what was
    # in flight) per kill, and each one was logged as a possible duplicate when re-queued.
    assert sum(arrived[m] - 1 for m in duplicates) <= kills * (batch + concurrency)
    logged = set(re.findall(rb"re-queued message \d+ (<[^>]+>)", b"".join(logs)))
    assert {m.encode() for m in duplicates} <= logged
    outbox.dispose()


async def test_two_workers_on_postgresql_never_send_twice(
    database_url: str, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the two-worker guarantee is FOR UPDATE SKIP LOCKED on PostgreSQL")
    handler = SinkHandler()
    server = smtp_server_factory(handler=handler)
    env, outbox = prepare(database_url, server.port)
    total = 20_000
    for start in range(0, total, 5000):
        outbox.send_many(bulk(5000, start), stream="bulk")

    workers = [spawn(worker_args("--once"), worker_env(env)) for _ in range(2)]
    results = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err.decode()

    arrived = Counter(message_id for _, message_id in handler.arrivals)
    assert len(handler.arrivals) == total
    assert max(arrived.values()) == 1
    assert set(arrived) == stored_message_ids(outbox)
    sent = [int(re.search(rb"sent (\d+)", out)[1]) for out, _ in results]  # type: ignore[index]
    assert all(n > 0 for n in sent), sent  # both took part
    outbox.dispose()


def _bulk_rows(settings: Settings, count: int) -> list[dict[str, Any]]:
    """Rows for ``count`` bulk messages, built once and copied: enqueue speed is not the
    subject here, the backlog is."""
    outbox = Outbox(settings)
    template = outbox._row(
        bulk(1)[0], stream="bulk", due_at=time.time(), now=time.time(), idempotency_key=None
    )
    outbox.dispose()
    return [
        {**template, "message_id": f"<bulk-{i}@example.com>", "recipients": [f"u{i}@example.com"]}
        for i in range(count)
    ]


async def test_transactional_overtakes_a_50000_bulk_backlog(
    database_url: str, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    handler = SinkHandler()
    server = smtp_server_factory(handler=handler)
    env, outbox = prepare(database_url, server.port)
    rows = _bulk_rows(outbox.settings, 50_000)
    with outbox.engine.begin() as connection:
        for start in range(0, len(rows), 10_000):
            queries.insert_messages(connection, rows[start : start + 10_000])

    worker = spawn(worker_args(), worker_env(env))
    try:
        deadline = time.monotonic() + 60
        while len(handler.arrivals) < 500:  # the worker is busy with the backlog
            assert time.monotonic() < deadline, "the worker never got going"
            await asyncio.sleep(0.05)
        sent_at = time.monotonic()
        urgent_pk = outbox.send(to=["ada@example.com"], subject="Password reset", text="x")
        urgent = outbox.get(urgent_pk)
        assert urgent is not None
        while not any(mid == urgent.message_id for _, mid in handler.arrivals):
            assert time.monotonic() - sent_at < 10, "the transactional message never arrived"
            await asyncio.sleep(0.01)
        arrived_at = next(t for t, mid in handler.arrivals if mid == urgent.message_id)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    assert arrived_at - sent_at < 2.0
    assert outbox.counts()[Status.QUEUED] > 40_000  # the backlog was still there
    outbox.dispose()
