"""No send outlives its lease: a relay that reads slowly but steadily never trips EMAIL_TIMEOUT
(each wait ends as it reads a little more), so the worker bounds the delivery as a whole and
cuts it off before WORKER_LEASE_SECONDS runs out, when another worker could take the message
and send it too."""

from __future__ import annotations

import asyncio
import random
import time

from sqlalchemy import select

from mailroom.config import Settings, load_settings
from mailroom.delivery.worker import Worker
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from support.smtp_server import ScriptedHandler, ServerFactory
from support.stalling_relay import StallingRelay

LEASE = 4.0


def settings_for(database_url: str, port: int, **extra: str) -> Settings:
    return load_settings(
        environ={
            "DATABASE_URL": database_url,
            "EMAIL_BACKEND": "smtp",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(port),
            "EMAIL_TIMEOUT": "30",  # longer than the lease: it bounds each wait, not the send
            "WORKER_LEASE_SECONDS": str(LEASE),
            "WORKER_POLL_INTERVAL": "0.01",
            **extra,
        }
    )


async def test_a_relay_reading_slowly_cannot_keep_a_send_past_its_lease(
    outbox: Outbox, database_url: str
) -> None:
    # 12 MB at 100 KB/s: two minutes, never long without reading.
    message_pk = outbox.send(
        to=["ada@example.com"], subject="figures", text="figures\n" * 1_500_000
    )
    async with StallingRelay(None, read_rate=100_000) as relay:
        worker = Worker(
            settings_for(database_url, relay.port), concurrency=1, once=True, rng=random.Random(0)
        )
        started = time.time()
        await asyncio.wait_for(worker.run(), 3 * LEASE)
        assert relay.content_read > 100_000  # it was reading all along
    assert relay.messages == []
    with outbox.engine.connect() as connection:
        row = connection.execute(select(messages).where(messages.c.id == message_pk)).one()
        logged = connection.execute(select(attempts.c.outcome)).scalars().all()
    # The outcome is in while the lease still holds: written (the row's updated_at) less than
    # a lease after the run began, and so after the claim. The worker's own ending (its
    # database thread, its engine) comes after and is no part of it.
    assert row.updated_at - started < LEASE
    assert (row.status, row.attempts) == ("deferred", 1)
    assert "WORKER_LEASE_SECONDS" in row.last_error
    assert logged == ["deferred"]
    assert worker.stats.deferred == 1


def slow_second_content() -> ScriptedHandler:
    """Answers the content of the second transaction only after a long wait."""
    return ScriptedHandler(content_delays={2: 3 * LEASE})


async def test_a_send_cut_off_after_some_transactions_keeps_them_sent(
    outbox: Outbox, database_url: str, smtp_server_factory: ServerFactory
) -> None:
    server = smtp_server_factory(handler=slow_second_content())
    message_pk = outbox.send(to=["ada@example.com", "bob@example.com"], subject="hi", text="hi")
    settings = settings_for(database_url, server.port, EMAIL_MAX_RECIPIENTS_PER_MESSAGE="1")
    worker = Worker(settings, concurrency=1, once=True, rng=random.Random(0))
    await asyncio.wait_for(worker.run(), 3 * LEASE)

    assert [r.rcpt_tos for r in server.scripted.received] == [["ada@example.com"]]
    with outbox.engine.connect() as connection:
        original, followup = connection.execute(select(messages).order_by(messages.c.id))
        logged = connection.execute(
            select(attempts.c.recipient, attempts.c.outcome).order_by(attempts.c.id)
        ).all()
    assert (original.id, original.status) == (message_pk, "sent")
    # Bob was not reached in time: tried again later, as after any timeout, alone.
    assert (followup.recipients, followup.status, followup.attempts) == (
        ["bob@example.com"],
        "deferred",
        1,
    )
    assert "WORKER_LEASE_SECONDS" in followup.last_error
    assert [tuple(row) for row in logged] == [
        ("ada@example.com", "sent"),
        ("bob@example.com", "deferred"),
    ]


async def test_a_send_cut_off_after_a_final_dot_flags_its_recipients_possible_duplicates(
    outbox: Outbox, database_url: str, smtp_server_factory: ServerFactory
) -> None:
    # One recipient a transaction: Ada's is accepted; Bob's content is all with the relay,
    # which answers it only after the lease, so the send is cut off. The relay may have taken
    # it for Bob (flagged); Cy was not reached (not flagged).
    server = smtp_server_factory(handler=slow_second_content())
    recipients = ["ada@example.com", "bob@example.com", "cy@example.com"]
    message_pk = outbox.send(to=recipients, subject="hi", text="hi")
    settings = settings_for(database_url, server.port, EMAIL_MAX_RECIPIENTS_PER_MESSAGE="1")
    worker = Worker(settings, concurrency=1, once=True, rng=random.Random(0))
    await asyncio.wait_for(worker.run(), 3 * LEASE)

    with outbox.engine.connect() as connection:
        original, followup = connection.execute(select(messages).order_by(messages.c.id))
        logged = connection.execute(
            select(attempts.c.recipient, attempts.c.outcome, attempts.c.possible_duplicate)
            .where(attempts.c.message_pk == message_pk)
            .order_by(attempts.c.id)
        ).all()
    assert original.status == "sent"
    assert (followup.recipients, followup.attempts) == (["bob@example.com", "cy@example.com"], 1)
    assert [tuple(row) for row in logged] == [
        ("ada@example.com", "sent", False),
        ("bob@example.com", "deferred", True),
        ("cy@example.com", "deferred", False),
    ]
    assert worker.stats.possible_duplicates == 1


async def test_a_single_send_cut_off_after_its_final_dot_is_a_possible_duplicate(
    outbox: Outbox, database_url: str, smtp_server_factory: ServerFactory
) -> None:
    # The first content is answered too late.
    handler = ScriptedHandler(content_delays={1: 3 * LEASE})
    server = smtp_server_factory(handler=handler)
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hi")
    settings = settings_for(database_url, server.port)
    worker = Worker(settings, concurrency=1, once=True, rng=random.Random(0))
    await asyncio.wait_for(worker.run(), 3 * LEASE)

    with outbox.engine.connect() as connection:
        row = connection.execute(select(messages).where(messages.c.id == message_pk)).one()
        logged = connection.execute(select(attempts.c.outcome, attempts.c.possible_duplicate)).all()
    assert (row.status, row.attempts) == ("deferred", 1)
    assert [tuple(r) for r in logged] == [("deferred", True)]
    assert worker.stats.possible_duplicates == 1
