"""The worker with the ``capture`` transport, and the events every worker writes, on a SQLite
file and on a real PostgreSQL.

Capture is a real transport: a message is claimed, stored with its exact bytes and envelope,
and recorded (status, attempt, events) as an SMTP delivery is. The events of refusals come
from a real aiosmtpd server answering 4xx and 5xx.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from mailroom.config import Settings, load_settings
from mailroom.delivery.worker import Worker
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.capture_queries import get_captured, list_captured
from mailroom.outbox.event_queries import EventRecord, events_of
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType
from support.smtp_server import SMTPTestServer

SENDER = "app@example.com"


def settings_for(database_url: str, **extra: str) -> Settings:
    # No transport named: capture is the default.
    environ = {
        "DATABASE_URL": database_url,
        "DEFAULT_FROM_EMAIL": SENDER,
        "WORKER_POLL_INTERVAL": "0.01",
        **extra,
    }
    return load_settings(environ=environ)


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(settings_for(database_url))
    database.upgrade(box.engine)
    yield box
    box.dispose()


async def run_once(settings: Settings, **kwargs: Any) -> Worker:
    worker = Worker(settings, once=True, rng=random.Random(0), **kwargs)
    try:
        await asyncio.wait_for(worker.run(), timeout=30)
    finally:
        worker.engine.dispose()
    return worker


def note(i: int, to: list[str] | None = None) -> Message:
    return Message(to=to or [f"user{i}@example.com"], subject=f"Note {i}", text=f"hello {i}")


def row_of(engine: Engine, message_pk: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(messages).where(messages.c.id == message_pk)).one()


def attempts_of(engine: Engine, message_pk: int) -> list[Any]:
    with engine.connect() as connection:
        query = select(attempts).where(attempts.c.message_pk == message_pk)
        return list(connection.execute(query.order_by(attempts.c.id)))


def events(engine: Engine, message_pk: int) -> list[EventRecord]:
    with engine.connect() as connection:
        return list(events_of(connection, message_pk))


def kinds(engine: Engine, message_pk: int) -> list[tuple[str, EventType]]:
    return [(e.recipient, e.type) for e in events(engine, message_pk)]


async def test_capture_delivers_records_and_keeps_the_exact_bytes(
    outbox: Outbox, database_url: str
) -> None:
    single = outbox.send(note(1))
    pair = outbox.send(
        Message(
            to=["bob@example.com"],
            bcc=["carol@example.com"],
            subject="Grüße, pair",
            text="hello both",
        )
    )

    worker = await run_once(settings_for(database_url), concurrency=2)

    assert worker.stats.sent == 2
    assert worker.stats.deferred == worker.stats.failed == 0
    with outbox.engine.connect() as connection:
        listed = list_captured(connection)
        stored = {c.message_pk: get_captured(connection, c.id) for c in listed}
    assert sorted(c.message_pk or 0 for c in listed) == sorted([single, pair])
    for message_pk in (single, pair):
        row = row_of(outbox.engine, message_pk)
        assert row.status == "sent"
        assert row.attempts == 1
        captured = stored[message_pk]
        assert captured is not None
        assert captured.data == row.data  # the exact bytes committed, as a relay would get
        assert captured.message_id == row.message_id
        assert captured.mail_from == row.sender
        assert list(captured.recipients) == row.recipients
        logged = attempts_of(outbox.engine, message_pk)
        assert [(a.recipient, a.outcome, a.transport) for a in logged] == [
            (recipient, "sent", "capture") for recipient in row.recipients
        ]
        got = events(outbox.engine, message_pk)
        assert [(e.recipient, e.type) for e in got] == [
            *[(r, EventType.QUEUED) for r in row.recipients],
            *[(r, EventType.SENT) for r in row.recipients],
        ]
        sent = got[-1]
        assert sent.detail is not None
        assert sent.detail["transport"] == "capture"
        assert sent.detail["attempt"] == 1
        assert got[0].at == row.created_at
    both = stored[pair]
    assert both is not None
    assert both.subject == "Grüße, pair"  # decoded from the header
    assert both.recipients == ("bob@example.com", "carol@example.com")  # Bcc too
    assert b"carol@example.com" not in both.data  # ...but not in the headers


async def test_capture_keeps_at_most_capture_max_messages(
    outbox: Outbox, database_url: str
) -> None:
    ids = [outbox.send(note(i)) for i in range(7)]

    worker = await run_once(
        settings_for(database_url, CAPTURE_MAX_MESSAGES="3"), concurrency=1, batch_size=2
    )

    assert worker.stats.sent == 7
    with outbox.engine.connect() as connection:
        kept = list_captured(connection)
    assert len(kept) == 3
    # Sent in order with one sender: the oldest four were dropped.
    assert [c.message_pk for c in kept] == ids[:-4:-1]
    assert all(row_of(outbox.engine, i).status == "sent" for i in ids)


async def test_an_idempotent_repeat_is_not_queued_twice(outbox: Outbox) -> None:
    first = outbox.send(note(1), idempotency_key="k-1")
    again = outbox.send(note(1), idempotency_key="k-1")
    assert again == first
    assert kinds(outbox.engine, first) == [("user1@example.com", EventType.QUEUED)]


async def test_send_many_queues_one_event_per_recipient_in_order(outbox: Outbox) -> None:
    ids = outbox.send_many(
        [note(i, to=[f"a{i}@example.com", f"b{i}@example.com"]) for i in range(3)]
    )
    for i, message_pk in enumerate(ids):
        assert kinds(outbox.engine, message_pk) == [
            (f"a{i}@example.com", EventType.QUEUED),
            (f"b{i}@example.com", EventType.QUEUED),
        ]


async def test_smtp_refusals_are_deferred_and_failed_events(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.rcpt_replies["later@example.com"] = "450 4.2.1 mailbox busy"
    smtp_server.scripted.rcpt_replies["nobody@example.com"] = "550 5.1.1 no such user"
    deferred = outbox.send(note(1, to=["later@example.com"]))
    failed = outbox.send(note(2, to=["nobody@example.com"]))
    mixed = outbox.send(note(3, to=["ok@example.com", "nobody@example.com"]))
    smtp = {
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "EMAIL_TIMEOUT": "1",
    }

    worker = await run_once(settings_for(database_url, **smtp))

    assert (worker.stats.sent, worker.stats.deferred, worker.stats.failed) == (1, 1, 1)
    assert kinds(outbox.engine, deferred) == [
        ("later@example.com", EventType.QUEUED),
        ("later@example.com", EventType.DEFERRED),
    ]
    assert kinds(outbox.engine, failed) == [
        ("nobody@example.com", EventType.QUEUED),
        ("nobody@example.com", EventType.FAILED),
    ]
    # Sent to one, refused for good for the other: an event each.
    assert sorted(kinds(outbox.engine, mixed)[2:]) == [
        ("nobody@example.com", EventType.FAILED),
        ("ok@example.com", EventType.SENT),
    ]
    (refusal,) = [e for e in events(outbox.engine, failed) if e.type is EventType.FAILED]
    assert refusal.detail is not None
    assert (refusal.detail["code"], refusal.detail["enhanced_status"]) == (550, "5.1.1")
    assert refusal.detail["transport"] == "smtp"
    (busy,) = [e for e in events(outbox.engine, deferred) if e.type is EventType.DEFERRED]
    assert busy.detail is not None
    assert (busy.detail["code"], busy.detail["enhanced_status"]) == (450, "4.2.1")
    # One event per attempt row that is an outcome for its recipient, in the same commit.
    for message_pk in (deferred, failed, mixed):
        rows = attempts_of(outbox.engine, message_pk)
        outcomes = [e for e in events(outbox.engine, message_pk) if e.type != EventType.QUEUED]
        assert len(outcomes) == len(rows)
        assert sorted(e.at for e in outcomes) == sorted(a.at for a in rows)
