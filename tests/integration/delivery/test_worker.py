"""The worker against a real aiosmtpd server, on a SQLite file and on a real PostgreSQL.

Each test enqueues through :class:`Outbox`, runs a real :class:`Worker` (mostly ``once=True``,
with a seeded random generator and, where times are asserted, a jitter-free retry policy),
then reads the outbox rows and what the server received.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update

from mailroom.config import Settings, load_settings
from mailroom.consent.suppression import suppress
from mailroom.delivery import recording
from mailroom.delivery import worker as worker_module
from mailroom.delivery.retry import RetryPolicy
from mailroom.delivery.worker import Worker
from mailroom.errors import DatabaseError, DatabaseFileError, SchemaOutdatedError
from mailroom.message import Envelope, Message
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages, streams
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.transports import Transport
from mailroom.transports.smtp import SMTPTransport
from support.smtp_server import TEST_PASSWORD, TEST_USER, ServerFactory, SMTPTestServer
from support.tls_files import TLSFiles

SENDER = "app@example.com"
NO_JITTER = RetryPolicy(jitter=0.0)
"""Default delays without jitter: the first retry is exactly 60 s later, a pause 30 s."""
SLACK = 0.01  # seconds: float epoch rounding between the worker's clock reads and ours


def settings_for(database_url: str, server: SMTPTestServer | None = None, **extra: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "DEFAULT_FROM_EMAIL": SENDER,
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port if server is not None else 25),
        "EMAIL_TIMEOUT": "1",
        "WORKER_POLL_INTERVAL": "0.01",
    }
    environ.update(extra)
    return load_settings(environ=environ)


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(settings_for(database_url))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def note(i: int = 0, to: list[str] | None = None) -> Message:
    return Message(to=to or [f"user{i}@example.com"], subject=f"Note {i}", text=f"hello {i}")


@dataclass
class Run:
    """One finished worker run and the wall-clock window around it."""

    worker: Worker
    started: float
    finished: float

    def around(self, seconds: float) -> tuple[float, float]:
        """The window a time ``seconds`` after some moment of the run must fall in."""
        return self.started + seconds - SLACK, self.finished + seconds + SLACK


async def run_once(settings: Settings, **kwargs: Any) -> Run:
    worker = Worker(settings, once=True, rng=random.Random(0), **kwargs)
    started = time.time()
    try:
        await asyncio.wait_for(worker.run(), timeout=30)
    finally:
        worker.engine.dispose()
    return Run(worker, started, time.time())


def message_row(engine: Engine, message_pk: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(messages).where(messages.c.id == message_pk)).one()


def attempt_rows(engine: Engine, message_pk: int) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(attempts).where(attempts.c.message_pk == message_pk).order_by(attempts.c.id)
            )
        )


def stream_row(engine: Engine, name: str = "transactional") -> Any:
    with engine.connect() as connection:
        return connection.execute(select(streams).where(streams.c.name == name)).first()


def statuses(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(messages.c.status, func.count()).group_by(messages.c.status)
        )
        return {row[0]: row[1] for row in rows}


def received_ids(server: SMTPTestServer) -> list[str]:
    """The Message-ID of each message the server accepted, in the order it accepted them."""
    return [
        str(email.message_from_bytes(r.data, policy=email.policy.default)["Message-ID"])
        for r in server.scripted.received
    ]


def between(value: float | None, window: tuple[float, float]) -> bool:
    return value is not None and window[0] <= value <= window[1]


# -- 1. the happy path -----------------------------------------------------------------------


async def test_delivers_every_message_over_reused_connections(
    outbox: Outbox, smtp_server: SMTPTestServer, database_url: str
) -> None:
    ids = outbox.send_many([note(i) for i in range(12)])
    pair = outbox.send(note(99, to=["bob@example.com", "carol@example.com"]))

    run = await run_once(settings_for(database_url, smtp_server), concurrency=2)

    assert run.worker.stats.sent == 13
    assert run.worker.stats.deferred == run.worker.stats.failed == run.worker.stats.paused == 0
    window = run.around(0)
    for message_pk in [*ids, pair]:
        row = message_row(outbox.engine, message_pk)
        assert row.status == "sent"
        assert row.attempts == 1
        assert between(row.sent_at, window)
        assert row.due_at == row.sent_at
        assert row.lease_token is None
        assert row.lease_expires_at is None
        assert row.last_error is None
        assert row.last_code is None
        assert row.last_enhanced_status is None
        logged = attempt_rows(outbox.engine, message_pk)
        assert [a.recipient for a in logged] == row.recipients
        for attempt in logged:
            assert attempt.attempt == 1
            assert attempt.outcome == "sent"
            assert attempt.code == 250
            assert attempt.transport == "smtp"
            assert attempt.worker == run.worker.name
            assert attempt.possible_duplicate is False
            assert between(attempt.at, window)
            # aiosmtpd answers "250 2.0.0 OK queued"; whether the worker splits off the
            # enhanced status of a success is not pinned here (see the report).
            assert (attempt.enhanced_status, attempt.server_text) in {
                (None, "2.0.0 OK queued"),
                ("2.0.0", "OK queued"),
            }

    server_ids = received_ids(smtp_server)
    assert sorted(server_ids) == sorted(
        message_row(outbox.engine, pk).message_id for pk in [*ids, pair]
    )
    [both] = [r for r in smtp_server.scripted.received if len(r.rcpt_tos) == 2]
    assert both.rcpt_tos == ["bob@example.com", "carol@example.com"]
    assert all(r.mail_from == SENDER for r in smtp_server.scripted.received)
    # One connection per sender at most, reused for every message it sends.
    assert 1 <= smtp_server.scripted.connections <= 2


# -- 2. the fault matrix ---------------------------------------------------------------------

Setup = Callable[[ServerFactory, TLSFiles], tuple[SMTPTestServer, dict[str, str]]]


@dataclass(frozen=True)
class Expected:
    """How one fault must end: ``deferred``, ``failed`` or ``paused``."""

    outcome: str
    code: int | None = None
    enhanced: str | None = None
    text: str = ""
    """Found in the attempt row's server_text and in the message's last_error."""
    possible_duplicate: bool | None = False
    """Whether the attempt may have delivered the message (None: either, a race)."""
    connections: int | None = 1
    """How many connections the one attempt opened (None: not asserted)."""


def replying(command: str, reply: str) -> Setup:
    def setup(factory: ServerFactory, tls: TLSFiles) -> tuple[SMTPTestServer, dict[str, str]]:
        server = factory()
        server.scripted.replies[command] = reply
        return server, {}

    return setup


def closing_at(point: str) -> Setup:
    def setup(factory: ServerFactory, tls: TLSFiles) -> tuple[SMTPTestServer, dict[str, str]]:
        server = factory()
        server.scripted.close_at.add(point)
        return server, {}

    return setup


def wrong_password(factory: ServerFactory, tls: TLSFiles) -> tuple[SMTPTestServer, dict[str, str]]:
    server = factory("starttls", auth=True, auth_required=True)
    return server, {
        "EMAIL_USE_TLS": "true",
        "EMAIL_SSL_CAFILE": str(tls.ca_path),
        "EMAIL_HOST_USER": TEST_USER,
        # Contains the real password, so the autouse log check would catch this one leaking.
        "EMAIL_HOST_PASSWORD": "wrong-" + TEST_PASSWORD,
    }


def implicit_tls_to_plain_server(
    factory: ServerFactory, tls: TLSFiles
) -> tuple[SMTPTestServer, dict[str, str]]:
    return factory(), {"EMAIL_USE_SSL": "true", "EMAIL_SSL_CAFILE": str(tls.ca_path)}


def closing_in_data(factory: ServerFactory, tls: TLSFiles) -> tuple[SMTPTestServer, dict[str, str]]:
    return factory(close_in_data=True), {}


def closing_after_dot(
    factory: ServerFactory, tls: TLSFiles
) -> tuple[SMTPTestServer, dict[str, str]]:
    server = factory()
    server.scripted.close_after_dot = True
    return server, {}


def slow_mail_reply(factory: ServerFactory, tls: TLSFiles) -> tuple[SMTPTestServer, dict[str, str]]:
    server = factory()
    server.scripted.delays["MAIL"] = 2.0
    return server, {"EMAIL_TIMEOUT": "0.5"}


def replied(command: str, reply: str, outcome: str, name: str = "") -> Any:
    """A fault case: the server answers ``command`` with ``reply``, whose code, enhanced
    status and text the attempt must record."""
    code, enhanced, text = reply.split(" ", 2)
    expected = Expected(outcome, int(code), enhanced, text)
    return pytest.param(replying(command, reply), expected, id=name or f"{code}-{command.lower()}")


def dropped(setup: Setup, stage: str, name: str, **expected: Any) -> Any:
    """A fault case: the server hangs up, and the attempt is deferred for it."""
    closed = Expected("deferred", text=f"closed the connection ({stage})", **expected)
    return pytest.param(setup, closed, id=name)


FAULTS = [
    replied("MAIL", "421 4.3.2 shutting down", "deferred"),
    replied("RCPT", "450 4.2.1 mailbox busy", "deferred"),
    replied("RCPT", "451 4.3.0 try again later", "deferred"),
    replied("RCPT", "452 4.2.2 mailbox full", "deferred"),
    replied("MAIL", "454 4.7.0 temporary authentication failure", "deferred"),
    replied("RCPT", "550 5.1.1 no such user", "failed", name="550-5.1.1-rcpt"),
    replied("DATA", "552 5.3.4 message too big", "failed"),
    replied("DATA", "554 5.6.0 content rejected", "failed"),
    pytest.param(
        wrong_password,
        # One TCP connection, counted twice: aiosmtpd calls connection_made again after
        # STARTTLS.
        Expected("paused", 535, "5.7.8", "Authentication credentials invalid", connections=2),
        id="535-auth",
    ),
    pytest.param(
        implicit_tls_to_plain_server,
        Expected("paused", None, None, "TLS with 127.0.0.1"),
        id="tls-failure",
    ),
    dropped(closing_at("GREETING"), "connect", "close-at-greeting"),
    # A drop at MAIL looks like a stale reused connection: the transport tries once more on
    # a fresh one, which this server drops too.
    dropped(closing_at("MAIL"), "mail", "close-at-mail", connections=2),
    dropped(closing_at("RCPT"), "rcpt", "close-at-rcpt"),
    dropped(closing_at("DATA"), "data", "close-at-data"),
    # The server sends 354 and hangs up. Whether the client notices before it has written the
    # content is a race; when it has written it, silence after the final dot is all it can
    # see, so it must assume the message may have been delivered.
    dropped(closing_in_data, "data", "close-mid-data", possible_duplicate=None),
    dropped(closing_after_dot, "data", "close-after-final-dot", possible_duplicate=True),
    pytest.param(
        slow_mail_reply,
        Expected("deferred", text="did not answer within 0.5 s (mail)"),
        id="reply-slower-than-timeout",
    ),
]


@pytest.mark.parametrize(("setup", "expected"), FAULTS)
async def test_fault(
    outbox: Outbox,
    smtp_server_factory: ServerFactory,
    tls: TLSFiles,
    setup: Setup,
    expected: Expected,
) -> None:
    server, extra = setup(smtp_server_factory, tls)
    message_pk = outbox.send(note(1))

    settings = settings_for(outbox.settings.DATABASE_URL, server, **extra)
    run = await run_once(settings, retry_policy=NO_JITTER)

    row = message_row(outbox.engine, message_pk)
    [attempt] = attempt_rows(outbox.engine, message_pk)
    stats = run.worker.stats
    assert server.scripted.received == []
    if expected.connections is not None:
        assert server.scripted.connections == expected.connections
    assert row.sent_at is None
    assert row.lease_token is None
    assert row.last_code == expected.code
    assert row.last_enhanced_status == expected.enhanced
    assert expected.text in row.last_error
    assert attempt.attempt == 1
    assert attempt.recipient == "user1@example.com"
    assert attempt.code == expected.code
    assert attempt.enhanced_status == expected.enhanced
    assert expected.text in attempt.server_text
    if expected.possible_duplicate is not None:
        assert attempt.possible_duplicate is expected.possible_duplicate
    assert stats.possible_duplicates == int(attempt.possible_duplicate)
    assert stats.sent == 0

    if expected.outcome == "deferred":
        assert (stats.deferred, stats.failed, stats.paused) == (1, 0, 0)
        assert row.status == "deferred"
        assert row.attempts == 1
        assert between(row.due_at, run.around(60))  # 60 s backoff, no jitter
        assert row.last_error.startswith("attempt 1 of 3 failed")
        may_be_delivered = "the relay may have delivered the message already" in row.last_error
        assert may_be_delivered is attempt.possible_duplicate
        assert attempt.outcome == "deferred"
        assert stream_row(outbox.engine) is None
    elif expected.outcome == "failed":
        assert (stats.deferred, stats.failed, stats.paused) == (0, 1, 0)
        assert row.status == "failed"
        assert row.attempts == 1
        assert between(row.due_at, run.around(0))
        # The relay's own reply is the reason, word for word.
        assert row.last_error == f"{expected.code} {expected.enhanced} {expected.text}"
        assert attempt.outcome == "failed"
        assert stream_row(outbox.engine) is None
    else:
        assert (stats.deferred, stats.failed, stats.paused) == (0, 0, 1)
        # Our configuration is wrong, not the message: back in the queue, no attempt used.
        assert row.status == "queued"
        assert row.attempts == 0
        assert between(row.due_at, run.around(0))
        assert row.last_error.startswith("our configuration is wrong: ")
        assert attempt.outcome == "paused"
        paused = stream_row(outbox.engine)
        assert paused is not None
        assert between(paused.paused_until, run.around(30))  # the first pause: 30 s
        # The reason, then the advice send-test-email would give (for status, streams list).
        reason, _, advice = paused.pause_reason.partition("\n")
        assert reason == row.last_error
        assert advice.strip()
        # Shown on the status page: the advice names the login's setting, never its value.
        assert TEST_USER not in paused.pause_reason
        if expected.code == 535:
            assert "refused the login of (EMAIL_HOST_USER)" in advice
        assert paused.consecutive_pauses == 1


async def test_a_drop_at_mail_on_one_connection_is_retried_on_a_fresh_one(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.close_at.add("MAIL")
    smtp_server.scripted.close_limit = 1
    message_pk = outbox.send(note(1))

    run = await run_once(settings_for(database_url, smtp_server), retry_policy=NO_JITTER)

    row = message_row(outbox.engine, message_pk)
    assert row.status == "sent"
    assert row.attempts == 1
    assert [a.outcome for a in attempt_rows(outbox.engine, message_pk)] == ["sent"]
    assert run.worker.stats.sent == 1
    assert smtp_server.scripted.closes == 1
    assert smtp_server.scripted.connections == 2
    assert received_ids(smtp_server) == [row.message_id]


# -- 3. retries run out ----------------------------------------------------------------------


async def test_gives_up_after_max_attempts(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.replies["RCPT"] = "451 4.3.0 try again later"
    settings = settings_for(database_url, smtp_server, EMAIL_MAX_ATTEMPTS="2")
    message_pk = outbox.send(note(1))

    # The policy from the settings this time: 60 s ± 20 % jitter.
    first = await run_once(settings)
    row = message_row(outbox.engine, message_pk)
    assert row.status == "deferred"
    assert row.attempts == 1
    assert first.around(48)[0] <= row.due_at <= first.around(72)[1]
    assert row.last_error == "attempt 1 of 2 failed: 451 4.3.0 try again later"

    with outbox.engine.begin() as connection:
        connection.execute(
            update(messages).where(messages.c.id == message_pk).values(due_at=time.time() - 1)
        )
    second = await run_once(settings)

    row = message_row(outbox.engine, message_pk)
    assert row.status == "failed"
    assert row.attempts == 2
    assert row.last_error == "gave up after 2 attempts: 451 4.3.0 try again later"
    assert (row.last_code, row.last_enhanced_status) == (451, "4.3.0")
    assert between(row.due_at, second.around(0))
    assert row.sent_at is None
    logged = attempt_rows(outbox.engine, message_pk)
    assert [(a.attempt, a.outcome, a.code, a.enhanced_status) for a in logged] == [
        (1, "deferred", 451, "4.3.0"),
        (2, "failed", 451, "4.3.0"),
    ]
    assert all(a.server_text == "try again later" for a in logged)
    assert (second.worker.stats.failed, second.worker.stats.deferred) == (1, 0)
    assert smtp_server.scripted.received == []


async def test_giving_up_after_silence_at_the_final_dot_says_it_may_have_been_delivered(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.close_after_dot = True
    message_pk = outbox.send(note(1))

    await run_once(settings_for(database_url, smtp_server, EMAIL_MAX_ATTEMPTS="1"))

    row = message_row(outbox.engine, message_pk)
    assert row.status == "failed"
    assert row.attempts == 1
    assert row.last_error.startswith(
        "gave up after 1 attempts (the relay may have delivered the message already): "
    )
    [attempt] = attempt_rows(outbox.engine, message_pk)
    assert attempt.outcome == "failed"
    # Not asserted: attempt.possible_duplicate (False today although this attempt may have
    # delivered the message; see the report).


# -- 4. some recipients refused ----------------------------------------------------------------


async def test_one_recipient_refused_the_others_delivered(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.rcpt_replies["nobody@example.com"] = "550 5.1.1 no such user"
    message_pk = outbox.send(note(1, to=["bob@example.com", "nobody@example.com"]))

    run = await run_once(settings_for(database_url, smtp_server), retry_policy=NO_JITTER)

    row = message_row(outbox.engine, message_pk)
    assert row.status == "sent"
    assert row.attempts == 1
    assert between(row.sent_at, run.around(0))
    assert row.last_error is None
    sent, refused = attempt_rows(outbox.engine, message_pk)
    assert (sent.recipient, sent.outcome, sent.code) == ("bob@example.com", "sent", 250)
    assert (refused.recipient, refused.outcome) == ("nobody@example.com", "refused")
    assert (refused.code, refused.enhanced_status, refused.server_text) == (
        550,
        "5.1.1",
        "no such user",
    )
    assert sent.possible_duplicate is refused.possible_duplicate is False
    [received] = smtp_server.scripted.received
    assert received.rcpt_tos == ["bob@example.com"]
    assert run.worker.stats.sent == 1


class FailingSecondTransaction(SMTPTransport):
    """A transport with a bug that shows only in the second transaction of a delivery."""

    transactions = 0

    async def _batch(self, envelope: Envelope, recipients: list[str]) -> Any:
        self.transactions += 1
        if self.transactions == 2:
            raise RuntimeError("a bug in the transport")
        return await super()._batch(envelope, recipients)


async def test_an_unexpected_error_after_a_transaction_was_accepted_sends_it_once(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    # One recipient a transaction: Ada's is accepted, then the transport fails with a bug.
    # Ada has the message and must not get it again; only Bob is tried again, later.
    message_pk = outbox.send(note(1, to=["ada@example.com", "bob@example.com"]))
    settings = settings_for(database_url, smtp_server, EMAIL_MAX_RECIPIENTS_PER_MESSAGE="1")
    transports: list[FailingSecondTransaction] = []

    def factory() -> Transport:
        transports.append(
            FailingSecondTransaction(
                host="127.0.0.1",
                port=smtp_server.port,
                timeout=1,
                max_recipients=settings.EMAIL_MAX_RECIPIENTS_PER_MESSAGE,
            )
        )
        return transports[-1]

    run = await run_once(settings, retry_policy=NO_JITTER, transport_factory=factory)

    assert [r.rcpt_tos for r in smtp_server.scripted.received] == [["ada@example.com"]]
    original, followup = (message_row(outbox.engine, pk) for pk in (message_pk, message_pk + 1))
    assert (original.status, original.attempts) == ("sent", 1)
    assert (followup.recipients, followup.status, followup.attempts) == (
        ["bob@example.com"],
        "deferred",
        1,
    )
    assert between(followup.due_at, run.around(60))
    assert "RuntimeError" in followup.last_error
    logged = [(r.recipient, r.outcome) for r in attempt_rows(outbox.engine, message_pk)]
    assert logged == [("ada@example.com", "sent"), ("bob@example.com", "deferred")]
    assert (run.worker.stats.sent, run.worker.stats.deferred) == (1, 0)

    # Bob's row, tried again, reaches Bob alone.
    make_due = update(messages).where(messages.c.id == followup.id).values(due_at=0)
    with outbox.engine.begin() as connection:
        connection.execute(make_due)
    await run_once(settings_for(database_url, smtp_server))
    delivered = [r.rcpt_tos for r in smtp_server.scripted.received]
    assert delivered == [["ada@example.com"], ["bob@example.com"]]


async def test_suppressed_recipients_are_withheld_at_send_time(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    """A bounce that arrives after a message was queued still stops it: the worker checks
    the suppression list when it claims the message, not only the caller at enqueue."""
    only_bounced = outbox.send(note(1, to=["Gone@Example.com"]))
    mixed = outbox.send(note(2, to=["bob@example.com", "gone@example.com"]))
    suppress(outbox.engine, "gone@example.com", SuppressionReason.HARD_BOUNCE)

    run = await run_once(settings_for(database_url, smtp_server), retry_policy=NO_JITTER)

    withheld = message_row(outbox.engine, only_bounced)
    assert (withheld.status, withheld.attempts) == ("suppressed", 0)
    assert withheld.last_error == "suppressed: Gone@example.com (hard_bounce)"
    [row] = attempt_rows(outbox.engine, only_bounced)
    assert (row.recipient, row.outcome) == ("Gone@example.com", "suppressed")
    assert message_row(outbox.engine, mixed).status == "sent"
    [received] = smtp_server.scripted.received
    assert received.rcpt_tos == ["bob@example.com"]
    assert (run.worker.stats.sent, run.worker.stats.suppressed) == (1, 1)


async def test_outcomes_survive_a_failed_database_write(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recorder keeps a batch it could not write and writes it again: the worker neither
    loses the outcomes (and hangs in --once) nor sends anything twice."""
    ids = [outbox.send(note(i)) for i in range(3)]
    worker = Worker(settings_for(database_url, smtp_server), once=True, rng=random.Random(0))
    monkeypatch.setattr(recording, "_RECORD_RETRY", 0.05)
    real_record = worker.recorder.record
    calls: list[int] = []

    def flaky_record(batch: list[Any]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        real_record(batch)

    monkeypatch.setattr(worker.recorder, "record", flaky_record)
    try:
        await asyncio.wait_for(worker.run(), timeout=30)
    finally:
        worker.engine.dispose()

    assert len(calls) >= 2
    assert [message_row(outbox.engine, i).status for i in ids] == ["sent"] * 3
    assert sorted(received_ids(smtp_server)) == sorted(
        message_row(outbox.engine, i).message_id for i in ids
    )


async def test_a_database_gone_for_good_at_the_end_does_not_keep_the_worker(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database refusing every write, the worker still ends in bounded time after
    its last send, saying what it could not record; the messages keep their lease (they are
    sent again once it runs out), so nothing is lost."""
    ids = [outbox.send(note(i)) for i in range(3)]
    worker = Worker(settings_for(database_url, smtp_server), once=True, rng=random.Random(0))
    monkeypatch.setattr(recording, "_RECORD_RETRY", 0.05)
    monkeypatch.setattr(recording, "RECORD_AFTER_END", 0.5)

    def broken_record(batch: list[Any]) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(worker.recorder, "record", broken_record)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseError, match="could not record what happened to 3 message"):
            await asyncio.wait_for(worker.run(), timeout=30)
    finally:
        worker.engine.dispose()

    assert time.monotonic() - started < 10
    assert [message_row(outbox.engine, i).status for i in ids] == ["sending"] * 3


async def test_claims_blocked_past_the_statement_timeout_are_tried_again(
    outbox: Outbox,
    database_url: str,
    smtp_server: SMTPTestServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another session holding the messages table locked makes the worker's claims and
    sweeps fail after the statement timeout; the worker says so and tries again, and sends
    everything once the lock is gone, instead of waiting for ever or ending."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's statement and lock timeouts")
    ids = [outbox.send(note(i)) for i in range(3)]
    monkeypatch.setattr(worker_module, "_STATEMENT_TIMEOUT", 0.2)
    worker = Worker(settings_for(database_url, smtp_server, WORKER_POLL_INTERVAL="0.1"))
    run = asyncio.create_task(worker.run())
    try:
        with outbox.engine.connect() as session:
            session.execute(text(f"LOCK TABLE {messages.name} IN ACCESS EXCLUSIVE MODE"))
            await asyncio.sleep(1.5)
            assert not run.done()
            session.rollback()
        deadline = time.monotonic() + 10
        while len(smtp_server.scripted.received) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(run, 20)
        worker.engine.dispose()
    assert [message_row(outbox.engine, i).status for i in ids] == ["sent"] * 3
    assert any("could not claim" in r.getMessage() for r in caplog.records)


async def test_a_worker_stopped_before_it_runs_ends_cleanly(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    """A stop that comes before the run (a signal while a worker process starts) is no
    database fault: the start-up checks it no longer waits for are not reported as one."""
    message_pk = outbox.send(note(1))
    worker = Worker(settings_for(database_url, smtp_server))
    worker.stop()
    try:
        stats = await asyncio.wait_for(worker.run(), 5)
    finally:
        worker.engine.dispose()
    assert stats.sent == 0
    assert message_row(outbox.engine, message_pk).status == "queued"


async def test_a_claim_that_ends_after_the_stop_gives_its_messages_back(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    """A claim still waiting on the database when SIGTERM comes is left (the stop does not
    wait for it); if it then ends within the bounded time, what it claimed goes straight back
    to the queue instead of waiting for its lease."""
    ids = [outbox.send(note(i)) for i in range(3)]
    worker = Worker(settings_for(database_url, smtp_server, WORKER_POLL_INTERVAL="0.1"))
    database_answers = threading.Event()
    claim = worker.claims.claim

    def slow_claim(limit: int, max_bytes: int) -> Any:
        database_answers.wait(10)
        return claim(limit, max_bytes)

    worker.claims.claim = slow_claim  # type: ignore[method-assign]
    run = asyncio.create_task(worker.run())
    await asyncio.sleep(0.5)
    worker.stop()
    await asyncio.sleep(0.3)
    assert not run.done()  # waiting (boundedly) for the claim left behind
    database_answers.set()
    try:
        stats = await asyncio.wait_for(run, 10)
    finally:
        worker.engine.dispose()
    assert stats.sent == 0
    rows = [message_row(outbox.engine, i) for i in ids]
    assert [(r.status, r.lease_token, r.attempts) for r in rows] == [("queued", None, 0)] * 3
    assert smtp_server.scripted.received == []


# -- 5. priorities -----------------------------------------------------------------------------


async def test_transactional_mail_goes_before_queued_bulk_mail(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    outbox.send_many([note(i) for i in range(300)], stream="bulk")
    urgent = outbox.send(note(1000), stream="transactional")

    run = await run_once(settings_for(database_url, smtp_server), concurrency=1, batch_size=10)

    assert run.worker.stats.sent == 301
    order = received_ids(smtp_server)
    assert len(order) == 301
    assert order.index(message_row(outbox.engine, urgent).message_id) < 3


async def test_transactional_mail_overtakes_bulk_mail_already_being_sent(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    batch_size = 10
    outbox.send_many([note(i) for i in range(300)], stream="bulk")
    worker = Worker(
        settings_for(database_url, smtp_server),
        once=True,
        concurrency=1,
        batch_size=batch_size,
        rng=random.Random(0),
    )
    task = asyncio.create_task(worker.run())
    try:
        while len(smtp_server.scripted.received) < 50:
            assert not task.done()
            await asyncio.sleep(0.005)
        urgent = await asyncio.to_thread(outbox.send, note(1000), stream="transactional")
        received_before = len(smtp_server.scripted.received)
        await asyncio.wait_for(task, timeout=30)
    finally:
        worker.engine.dispose()

    order = received_ids(smtp_server)
    assert len(order) == 301
    position = order.index(message_row(outbox.engine, urgent).message_id)
    # Ahead of it can only be what the worker had already claimed: its local queue holds at
    # most two batches, and one more message is in the sender's hands.
    assert position - received_before <= 2 * batch_size + 1
    assert position < 250


# -- 6. a paused stream ------------------------------------------------------------------------


def tls_to_a_plain_server(database_url: str, server: SMTPTestServer, tls: TLSFiles) -> Settings:
    """Settings wrong in a way that pauses the stream: implicit TLS to a plain SMTP server."""
    return settings_for(
        database_url, server, EMAIL_USE_SSL="true", EMAIL_SSL_CAFILE=str(tls.ca_path)
    )


async def test_a_paused_stream_is_not_claimed_until_its_pause_ends(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer, tls: TLSFiles
) -> None:
    message_pk = outbox.send(note(1))
    wrong = tls_to_a_plain_server(database_url, smtp_server, tls)
    right = settings_for(database_url, smtp_server)

    first = await run_once(wrong, retry_policy=NO_JITTER)
    assert first.worker.stats.paused == 1
    paused = stream_row(outbox.engine)
    assert paused.consecutive_pauses == 1
    assert between(paused.paused_until, first.around(30))

    # The settings are fixed, but the stream's pause has not ended: nothing is claimed.
    second = await run_once(right, retry_policy=NO_JITTER)
    assert second.worker.stats.sent == 0
    assert smtp_server.scripted.received == []
    row = message_row(outbox.engine, message_pk)
    assert (row.status, row.attempts) == ("queued", 0)
    assert len(attempt_rows(outbox.engine, message_pk)) == 1
    assert stream_row(outbox.engine) == paused

    with outbox.engine.begin() as connection:
        connection.execute(update(streams).values(paused_until=time.time() - 1))
    third = await run_once(right, retry_policy=NO_JITTER)

    assert third.worker.stats.sent == 1
    row = message_row(outbox.engine, message_pk)
    assert (row.status, row.attempts) == ("sent", 1)
    assert received_ids(smtp_server) == [row.message_id]
    assert [a.outcome for a in attempt_rows(outbox.engine, message_pk)] == ["paused", "sent"]
    healthy = stream_row(outbox.engine)
    assert healthy.consecutive_pauses == 0
    assert healthy.paused_until is None
    assert healthy.pause_reason is None


async def test_pauses_grow_while_the_configuration_stays_wrong(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer, tls: TLSFiles
) -> None:
    message_pk = outbox.send(note(1))
    wrong = tls_to_a_plain_server(database_url, smtp_server, tls)
    await run_once(wrong, retry_policy=NO_JITTER)
    with outbox.engine.begin() as connection:
        connection.execute(update(streams).values(paused_until=time.time() - 1))

    second = await run_once(wrong, retry_policy=NO_JITTER)

    paused = stream_row(outbox.engine)
    assert paused.consecutive_pauses == 2
    assert between(paused.paused_until, second.around(60))  # 30 s, then 60 s
    row = message_row(outbox.engine, message_pk)
    assert (row.status, row.attempts) == ("queued", 0)
    assert [a.outcome for a in attempt_rows(outbox.engine, message_pk)] == ["paused", "paused"]


# -- 7. a graceful stop --------------------------------------------------------------------


async def test_stop_finishes_what_is_being_sent_and_gives_the_rest_back(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.delays["DATA"] = 0.3
    outbox.send_many([note(i) for i in range(50)])
    worker = Worker(settings_for(database_url, smtp_server), concurrency=2, rng=random.Random(0))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)
        assert not task.done()
        worker.stop()
        stats = await asyncio.wait_for(task, timeout=5)
    finally:
        worker.engine.dispose()

    counts = statuses(outbox.engine)
    assert "sending" not in counts
    assert set(counts) <= {"sent", "queued"}
    assert counts.get("sent", 0) + counts.get("queued", 0) == 50
    # Two senders, 0.3 s per message, stopped after 0.5 s: each finished the one in hand.
    assert 2 <= counts["sent"] <= 6
    assert stats.sent == counts["sent"]
    assert stats.released == counts["queued"]
    with outbox.engine.connect() as connection:
        rows = list(connection.execute(select(messages)))
    sent_ids = {r.message_id for r in rows if r.status == "sent"}
    assert set(received_ids(smtp_server)) == sent_ids
    assert len(smtp_server.scripted.received) == len(sent_ids)
    for r in rows:
        assert r.lease_token is None
        assert r.attempts == (1 if r.status == "sent" else 0)


# -- 8. an old schema ------------------------------------------------------------------------


async def test_refuses_to_run_on_an_unmigrated_database(database_url: str) -> None:
    if database_url.startswith("sqlite"):
        # No file yet: refused before one is made, so a worker in the wrong folder leaves none.
        with pytest.raises(DatabaseFileError, match="mailroom db upgrade"):
            Worker(settings_for(database_url), rng=random.Random(0))
        Path(database_url.removeprefix("sqlite:///")).touch()  # an empty database
    worker = Worker(settings_for(database_url), rng=random.Random(0))
    try:
        with pytest.raises(SchemaOutdatedError, match="mailroom db upgrade"):
            await asyncio.wait_for(worker.run(), timeout=10)
    finally:
        worker.engine.dispose()
