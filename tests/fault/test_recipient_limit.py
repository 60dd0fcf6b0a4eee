"""A relay that takes 100 recipients per transaction, as RFC 5321 §4.5.3.1.8 allows.

Past its limit it answers ``452 4.5.3 Too many recipients`` (Postfix's
``smtpd_recipient_limit``, Exchange, Sendmail's ``MaxRecipientsPerMessage``). A message to
thousands must still be delivered in one worker pass, every recipient exactly once, in
transactions of what the relay takes on one connection, with one outbox row and one attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import func, select

from mailroom.config import Settings, load_settings
from mailroom.delivery.retry import RetryPolicy
from mailroom.delivery.worker import Worker
from mailroom.message import Envelope as Mail
from mailroom.message import Message
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from mailroom.transports import SMTPTransport
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

LIMIT = 100
TOO_MANY = "452 4.5.3 Too many recipients"


@dataclass
class LimitedHandler(ScriptedHandler):
    """Accepts at most ``limit`` recipients per transaction; ``deferred`` get a 450."""

    limit: int = LIMIT
    deferred: set[str] = field(default_factory=set)
    too_many: int = 0
    """How many RCPT commands were answered "too many recipients"."""

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.deferred:
            return f"450 4.2.1 <{address}>: try again later"
        if len(envelope.rcpt_tos) >= self.limit:
            self.too_many += 1
            return TOO_MANY
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


def relay(factory: ServerFactory, *, pipelining: bool) -> tuple[SMTPTestServer, LimitedHandler]:
    """A relay that takes at most ``LIMIT`` recipients a transaction, and its handler."""
    handler = LimitedHandler(pipelining=pipelining)
    server = factory(handler=handler)
    assert server.scripted is handler
    return server, handler


def settings_for(database_url: str, server: SMTPTestServer, **extra: str) -> Settings:
    return load_settings(
        environ={
            "DATABASE_URL": database_url,
            "DEFAULT_FROM_EMAIL": "app@example.com",
            "EMAIL_BACKEND": "smtp",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_TIMEOUT": "10",
            "WORKER_POLL_INTERVAL": "0.01",
            **extra,
        }
    )


def announcement(count: int) -> Message:
    # Bcc, as a list would be sent: the header does not carry thousands of addresses.
    return Message(
        to=["list@example.com"],
        bcc=[f"member{i}@example.org" for i in range(count)],
        subject="News for everyone",
        text="hello",
    )


async def one_pass(settings: Settings) -> Worker:
    worker = Worker(settings, once=True, rng=random.Random(0), retry_policy=RetryPolicy(jitter=0))
    try:
        await asyncio.wait_for(worker.run(), timeout=120)
    finally:
        worker.engine.dispose()
    return worker


def rows(outbox: Outbox) -> list[Any]:
    with outbox.engine.connect() as connection:
        return list(connection.execute(select(messages).order_by(messages.c.id)))


def attempt_outcomes(outbox: Outbox) -> Counter[tuple[int, str, int | None]]:
    with outbox.engine.connect() as connection:
        found = connection.execute(
            select(attempts.c.attempt, attempts.c.outcome, attempts.c.code, func.count()).group_by(
                attempts.c.attempt, attempts.c.outcome, attempts.c.code
            )
        )
        return Counter({(a, o, c): n for a, o, c, n in found})


@pytest.mark.parametrize(
    ("count", "pipelining"), [(10_000, True), (1_000, False)], ids=["10000-pipelined", "1000"]
)
async def test_a_long_list_is_delivered_in_one_pass_in_transactions_the_relay_takes(
    outbox: Outbox, smtp_server_factory: ServerFactory, count: int, pipelining: bool
) -> None:
    server, handler = relay(smtp_server_factory, pipelining=pipelining)
    outbox.send(announcement(count - 1))  # list@ plus the members

    worker = await one_pass(settings_for(outbox.settings.DATABASE_URL, server))

    # Every recipient exactly once, in transactions of at most 100, on one connection.
    delivered = Counter(r for received in handler.received for r in received.rcpt_tos)
    assert len(delivered) == count
    assert set(delivered.values()) == {1}
    assert {len(received.rcpt_tos) for received in handler.received} == {LIMIT}
    assert len(handler.received) == count // LIMIT
    assert handler.connections == 1
    # The default EMAIL_MAX_RECIPIENTS_PER_MESSAGE (100) never asked for more than that.
    assert handler.too_many == 0
    # One row, sent, one attempt; one send-log row per recipient.
    [row] = rows(outbox)
    assert (row.status, row.attempts) == ("sent", 1)
    assert attempt_outcomes(outbox) == Counter({(1, "sent", 250): count})
    assert (worker.stats.sent, worker.stats.deferred) == (1, 0)


async def test_the_relays_limit_is_learned_from_its_too_many_recipients_reply(
    outbox: Outbox, smtp_server_factory: ServerFactory
) -> None:
    server, handler = relay(smtp_server_factory, pipelining=True)
    count = 1_000
    outbox.send(announcement(count - 1))
    second = outbox.send(announcement(count - 1))

    settings = settings_for(
        outbox.settings.DATABASE_URL,
        server,
        EMAIL_MAX_RECIPIENTS_PER_MESSAGE="5000",
        WORKER_CONCURRENCY="1",  # one transport, which keeps what it learned
    )
    await one_pass(settings)

    delivered = Counter(r for received in handler.received for r in received.rcpt_tos)
    assert set(delivered.values()) == {2}  # both messages, each recipient once per message
    assert len(delivered) == count
    assert {len(received.rcpt_tos) for received in handler.received} == {LIMIT}
    # The first transaction asked for all 1,000 and 900 had no room; after that, the
    # transport sent 100 a transaction, for that message and for the next.
    assert handler.too_many == count - LIMIT
    assert len(handler.received) == 2 * count // LIMIT
    assert handler.connections == 1
    assert [(r.status, r.attempts) for r in rows(outbox)] == [("sent", 1), ("sent", 1)]
    assert attempt_outcomes(outbox) == Counter({(1, "sent", 250): 2 * count})
    assert rows(outbox)[-1].id == second


async def test_only_recipients_deferred_for_themselves_get_a_follow_up_row(
    outbox: Outbox, smtp_server_factory: ServerFactory
) -> None:
    server, handler = relay(smtp_server_factory, pipelining=True)
    count = 1_000
    handler.deferred = {"member7@example.org", "member500@example.org"}
    first = outbox.send(announcement(count - 1))

    settings = settings_for(
        outbox.settings.DATABASE_URL, server, EMAIL_MAX_RECIPIENTS_PER_MESSAGE="1000"
    )
    await one_pass(settings)

    delivered = Counter(r for received in handler.received for r in received.rcpt_tos)
    assert len(delivered) == count - 2
    assert set(delivered.values()) == {1}
    original, followup = rows(outbox)
    assert (original.id, original.status, original.attempts) == (first, "sent", 1)
    # The follow-up holds the two deferred recipients only, not the rest of the list, and
    # counts the attempt they already had.
    assert sorted(followup.recipients) == sorted(handler.deferred)
    assert (followup.status, followup.attempts) == ("deferred", 1)
    assert followup.message_id == original.message_id
    assert attempt_outcomes(outbox) == Counter(
        {(1, "sent", 250): count - 2, (1, "deferred", 450): 2}
    )


async def test_without_pipelining_no_rcpt_is_sent_past_the_first_too_many(
    smtp_server_factory: ServerFactory,
) -> None:
    server, handler = relay(smtp_server_factory, pipelining=False)
    recipients = tuple(f"r{i}@example.org" for i in range(300))
    transport = SMTPTransport(host="127.0.0.1", port=server.port, timeout=10, max_recipients=250)
    async with transport:
        result = await transport.send(
            Mail(
                sender="app@example.com",
                recipients=recipients,
                data=b"Subject: hi\r\n\r\nhello\r\n",
                message_id="<m1@example.com>",
            )
        )
    assert result.accepted == recipients
    assert result.refused == {}
    assert handler.too_many == 1  # one round trip learned the limit; no 149 more
    assert [len(r.rcpt_tos) for r in handler.received] == [100, 100, 100]
    # Each accepted recipient has the reply of its own transaction.
    assert set(result.replies) == set(recipients)


async def test_a_later_transaction_failing_keeps_the_delivered_part_delivered(
    outbox: Outbox, smtp_server_factory: ServerFactory
) -> None:
    # Refuses the content of the second transaction for now.
    handler = LimitedHandler(limit=2, content_replies={2: "451 4.3.0 local error, try later"})
    server = smtp_server_factory(handler=handler)
    message_pk = outbox.send(
        Message(to=[f"r{i}@example.org" for i in range(5)], subject="Hi", text="x")
    )

    await one_pass(settings_for(outbox.settings.DATABASE_URL, server))

    # r0, r1 went in the first transaction; the second's content was refused for now, so
    # its recipients and the one never tried wait in a follow-up row: nobody gets it twice.
    assert [r.rcpt_tos for r in handler.received] == [["r0@example.org", "r1@example.org"]]
    original, followup = rows(outbox)
    assert (original.id, original.status, original.attempts) == (message_pk, "sent", 1)
    assert followup.recipients == ["r2@example.org", "r3@example.org", "r4@example.org"]
    assert (followup.status, followup.attempts) == ("deferred", 1)
    assert attempt_outcomes(outbox) == Counter({(1, "sent", 250): 2, (1, "deferred", 451): 3})


async def test_a_lowered_limit_is_learned_again_on_a_new_connection(
    smtp_server_factory: ServerFactory,
) -> None:
    server, handler = relay(smtp_server_factory, pipelining=True)
    handler.limit = 2  # a relay short of resources for a while
    recipients = tuple(f"r{i}@example.org" for i in range(5))

    def mail(number: int) -> Mail:
        return Mail(
            sender="app@example.com",
            recipients=recipients,
            data=b"Subject: hi\r\n\r\nhello\r\n",
            message_id=f"<m{number}@example.com>",
        )

    transport = SMTPTransport(host="127.0.0.1", port=server.port, timeout=10, max_recipients=10)
    async with transport:
        await transport.send(mail(1))
        handler.limit = LIMIT  # recovered
        await transport.send(mail(2))  # same connection: the lowered limit still holds
    async with transport:  # a new connection learns it again
        await transport.send(mail(3))
    assert [len(r.rcpt_tos) for r in handler.received] == [2, 2, 1, 2, 2, 1, 5]
    assert transport.connections_opened == 2
