"""WORKER_SHUTDOWN_GRACE in one process: a stop lets sends in flight finish within the grace,
then aborts the rest and gives their messages back, against a real aiosmtpd server or a relay
that stopped reading (the worker runs in the test's event loop; the fault tests run it as a
process and send it SIGTERM)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from mailroom.config import Settings, load_settings
from mailroom.delivery.worker import Worker
from mailroom.errors import SettingsError
from mailroom.outbox import database
from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from support.smtp_server import SMTPTestServer
from support.stalling_relay import StallAt, StallingRelay


def settings_for(database_url: str, port: int, **extra: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "WORKER_POLL_INTERVAL": "0.01",
        **extra,
    }
    return load_settings(environ=environ)


def one_recipient_a_transaction(database_url: str, port: int, **extra: str) -> Settings:
    """Settings that send one recipient a transaction, and stop with a grace of 0.1 s."""
    return settings_for(
        database_url,
        port,
        EMAIL_MAX_RECIPIENTS_PER_MESSAGE="1",
        WORKER_SHUTDOWN_GRACE="0.1",
        **extra,
    )


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    box = Outbox(settings_for(database_url, 25))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def row_of(engine: Engine, message_pk: int) -> Any:
    with engine.connect() as connection:
        return connection.execute(select(messages).where(messages.c.id == message_pk)).one()


def outcomes_of(engine: Engine, message_pk: int) -> list[str]:
    with engine.connect() as connection:
        query = select(attempts.c.outcome).where(attempts.c.message_pk == message_pk)
        return list(connection.execute(query).scalars())


def all_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(messages).order_by(messages.c.id)))


def send_log(engine: Engine) -> list[tuple[int, str, str, int]]:
    """(message, recipient, outcome, attempt) for every send-log row, in order."""
    with engine.connect() as connection:
        query = select(
            attempts.c.message_pk, attempts.c.recipient, attempts.c.outcome, attempts.c.attempt
        ).order_by(attempts.c.id)
        return [tuple(row) for row in connection.execute(query)]


def make_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(update(messages).values(due_at=0))


async def run_once(settings: Settings) -> Worker:
    worker = Worker(settings, concurrency=1, once=True, rng=random.Random(0))
    await asyncio.wait_for(worker.run(), 20)
    return worker


async def stop_a_stalled_send(
    database_url: str, stall: StallAt, *, grace: str, concurrency: int = 1
) -> tuple[Worker, float]:
    """Run a worker against a relay that stops answering at ``stall``, stop it once the relay
    has stalled, and return it with how long the stop took."""
    async with StallingRelay(stall) as relay:
        settings = settings_for(
            database_url, relay.port, EMAIL_TIMEOUT="600", WORKER_SHUTDOWN_GRACE=grace
        )
        worker = Worker(settings, concurrency=concurrency, rng=random.Random(0))
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(relay.stalled.wait(), 10)
        took = await stop_and_wait(worker, task, within=5)
    return worker, took


async def stop_during_transaction(
    settings: Settings, smtp_server: SMTPTestServer, *, after: int
) -> Worker:
    """Run a worker and stop it once the relay has accepted ``after`` transactions of this
    run, while the next one waits for its reply (the relay is slow to answer DATA)."""
    handler = smtp_server.scripted
    handler.delays["DATA"] = 0.5
    received, mails = len(handler.received), len(handler.behind_mail)
    worker = Worker(settings, concurrency=1, rng=random.Random(0))
    task = asyncio.create_task(worker.run())
    # The next transaction has begun (its MAIL came) after those accepted.
    while len(handler.received) - received < after or len(handler.behind_mail) - mails <= after:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the next transaction is waiting for its 250
    await stop_and_wait(worker, task, within=5)
    await asyncio.sleep(0.6)  # the relay's late reply to the aborted one went nowhere
    handler.delays.clear()
    return worker


async def stop_and_wait(worker: Worker, task: asyncio.Task[Any], within: float) -> float:
    started = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, within)
    return time.monotonic() - started


async def test_a_send_that_ends_within_the_grace_is_finished(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    smtp_server.scripted.delays["DATA"] = 0.6
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hello")
    settings = settings_for(database_url, smtp_server.port, WORKER_SHUTDOWN_GRACE="5")
    worker = Worker(settings, concurrency=1, rng=random.Random(0))
    task = asyncio.create_task(worker.run())
    while row_of(outbox.engine, message_pk).status != "sending":
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    took = await stop_and_wait(worker, task, within=5)
    assert took < 2
    assert row_of(outbox.engine, message_pk).status == "sent"
    assert len(smtp_server.scripted.received) == 1


async def test_a_send_still_running_after_the_grace_is_aborted_and_requeued(
    outbox: Outbox, database_url: str
) -> None:
    message_pk = outbox.send(
        to=["ada@example.com", "bob@example.com"], subject="figures", text="figures\n" * 600_000
    )
    worker, took = await stop_a_stalled_send(
        database_url, StallAt.CONTENT, grace="0.5", concurrency=2
    )
    assert 0.45 <= took < 2
    assert worker.stats.released == 1
    row = row_of(outbox.engine, message_pk)
    assert (row.status, row.attempts, row.lease_token) == ("queued", 0, None)
    assert outcomes_of(outbox.engine, message_pk) == ["interrupted", "interrupted"]


async def test_a_grace_of_zero_aborts_at_once(outbox: Outbox, database_url: str) -> None:
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hello")
    _, took = await stop_a_stalled_send(database_url, StallAt.MAIL, grace="0")
    assert took < 1
    assert row_of(outbox.engine, message_pk).status == "queued"


def test_a_negative_grace_is_refused_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"WORKER_SHUTDOWN_GRACE": "-1"})
    assert info.value.setting == "WORKER_SHUTDOWN_GRACE"


def test_the_grace_defaults_to_ten_seconds() -> None:
    assert load_settings(environ={}).WORKER_SHUTDOWN_GRACE == 10.0


async def test_a_stop_between_transactions_sends_no_recipient_twice(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    # One recipient a transaction: three transactions; the stop comes after the first one's
    # 250, during the second.
    recipients = ["ada@example.com", "bob@example.com", "cy@example.com"]
    message_pk = outbox.send(to=recipients, subject="hi", text="hello")
    settings = one_recipient_a_transaction(database_url, smtp_server.port)
    worker = await stop_during_transaction(settings, smtp_server, after=1)

    assert [r.rcpt_tos for r in smtp_server.scripted.received] == [["ada@example.com"]]
    # Ada has it: the message is sent; Bob and Cy wait in a follow-up row, due now, that has
    # used no attempt (the worker stopped; the relay did nothing wrong).
    original, followup = all_rows(outbox.engine)
    assert (original.id, original.status, original.attempts) == (message_pk, "sent", 1)
    assert followup.recipients == ["bob@example.com", "cy@example.com"]
    assert (followup.status, followup.attempts) == ("deferred", 0)
    assert followup.due_at <= time.time()
    assert followup.message_id == original.message_id
    assert "WORKER_SHUTDOWN_GRACE" in followup.last_error
    assert send_log(outbox.engine) == [
        (message_pk, "ada@example.com", "sent", 1),
        (message_pk, "bob@example.com", "interrupted", 1),
        (message_pk, "cy@example.com", "interrupted", 1),
    ]
    assert (worker.stats.sent, worker.stats.released) == (1, 0)

    await run_once(settings_for(database_url, smtp_server.port))

    delivered = Counter(r for m in smtp_server.scripted.received for r in m.rcpt_tos)
    assert delivered == Counter(recipients)  # each exactly once
    assert [(r.status, r.attempts) for r in all_rows(outbox.engine)] == [("sent", 1), ("sent", 1)]
    assert send_log(outbox.engine)[3:] == [
        (followup.id, "bob@example.com", "sent", 1),
        (followup.id, "cy@example.com", "sent", 1),
    ]


async def test_a_stop_keeps_the_reply_that_deferred_a_follow_up(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    handler = smtp_server.scripted
    busy = "450 4.2.1 mailbox busy, try later"
    handler.rcpt_replies.update({"bob@example.com": busy, "cy@example.com": busy})
    recipients = ["ada@example.com", "bob@example.com", "cy@example.com"]
    outbox.send(to=recipients, subject="hi", text="hello")
    await run_once(settings_for(database_url, smtp_server.port))
    _, deferred = all_rows(outbox.engine)
    assert (deferred.last_error, deferred.last_code) == ("mailbox busy, try later", 450)

    # The follow-up is tried again, one recipient a transaction, and the worker stops after
    # Bob's: Cy goes on in a row of its own, with the reply that deferred it.
    handler.rcpt_replies.clear()
    make_due(outbox.engine)
    settings = one_recipient_a_transaction(database_url, smtp_server.port)
    await stop_during_transaction(settings, smtp_server, after=1)
    _, deferred, rest = all_rows(outbox.engine)
    assert deferred.status == "sent"
    assert rest.recipients == ["cy@example.com"]
    assert (rest.status, rest.attempts) == ("deferred", 1)  # the first try's only
    assert (rest.last_error, rest.last_code, rest.last_enhanced_status) == (
        "mailbox busy, try later",
        450,
        "4.2.1",
    )

    # Stopped again, before any recipient of the row was accepted: the row goes back to the
    # queue as it is, with its reply.
    make_due(outbox.engine)
    await stop_during_transaction(settings, smtp_server, after=0)
    rest = row_of(outbox.engine, rest.id)
    assert (rest.status, rest.attempts) == ("queued", 1)
    assert (rest.last_error, rest.last_code) == ("mailbox busy, try later", 450)
    assert outcomes_of(outbox.engine, rest.id) == ["interrupted"]

    await run_once(settings_for(database_url, smtp_server.port))
    delivered = Counter(r for m in handler.received for r in m.rcpt_tos)
    assert delivered == Counter(recipients)


def slow_sweeps(worker: Worker) -> threading.Event:
    """Make the worker's lease sweep take a moment, as on a big table of a healthy database;
    the event is set once a sweep has begun."""
    sweep, sweeping = worker.claims.sweep, threading.Event()

    def slow_sweep(now: float) -> list[tuple[int, str]]:
        sweeping.set()
        time.sleep(0.3)
        return sweep(now)

    worker.claims.sweep = slow_sweep  # type: ignore[method-assign]
    return sweeping


async def test_a_stop_during_a_sweep_on_a_healthy_database_ends_cleanly(
    outbox: Outbox, database_url: str
) -> None:
    # The stop leaves the sweep running in the database thread; it ends a moment later, so
    # the worker ends normally, without a database error.
    worker = Worker(settings_for(database_url, 25), concurrency=1, rng=random.Random(0))
    sweeping = slow_sweeps(worker)
    task = asyncio.create_task(worker.run())
    while not sweeping.is_set():
        await asyncio.sleep(0.01)
    took = await stop_and_wait(worker, task, within=5)
    assert took < 2
    assert task.result() is worker.stats


async def test_recipients_deferred_before_a_stop_wait_their_backoff_with_the_attempt_counted(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    # One recipient a transaction: Ada is accepted, Bob refused for now (450), and the stop
    # comes during Cy's transaction. Bob had his attempt; only Cy (and Dan) were not reached.
    handler = smtp_server.scripted
    handler.rcpt_replies["bob@example.com"] = "450 4.2.1 mailbox busy"
    recipients = ["ada@example.com", "bob@example.com", "cy@example.com", "dan@example.com"]
    message_pk = outbox.send(to=recipients, subject="hi", text="hello")
    settings = one_recipient_a_transaction(database_url, smtp_server.port, EMAIL_RETRY_DELAY="60")
    stopped_at = time.time()
    worker = await stop_during_transaction(settings, smtp_server, after=1)

    original, deferred, rest = all_rows(outbox.engine)
    assert (original.id, original.status) == (message_pk, "sent")
    assert deferred.recipients == ["bob@example.com"]
    assert (deferred.status, deferred.attempts) == ("deferred", 1)
    assert deferred.due_at > stopped_at + 30  # the backoff, not due now
    assert (deferred.last_code, deferred.last_error) == (450, "mailbox busy")
    assert rest.recipients == ["cy@example.com", "dan@example.com"]
    assert (rest.status, rest.attempts) == ("deferred", 0)
    assert rest.due_at <= time.time()
    assert sorted(send_log(outbox.engine)) == [
        (message_pk, "ada@example.com", "sent", 1),
        (message_pk, "bob@example.com", "deferred", 1),
        (message_pk, "cy@example.com", "interrupted", 1),
        (message_pk, "dan@example.com", "interrupted", 1),
    ]
    # Counted once, as sent: its remainder is not also counted as released.
    assert (worker.stats.sent, worker.stats.released) == (1, 0)


def flags(engine: Engine) -> list[tuple[str, str, bool]]:
    """(recipient, outcome, possible duplicate) for every send-log row, in order."""
    with engine.connect() as connection:
        query = select(
            attempts.c.recipient, attempts.c.outcome, attempts.c.possible_duplicate
        ).order_by(attempts.c.id)
        return [tuple(row) for row in connection.execute(query)]


async def test_a_stop_after_the_final_dot_flags_the_message_a_possible_duplicate(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    # The stop comes while the relay has the whole content and has not yet answered it: it
    # may have taken the message, so sending it again may deliver it twice.
    message_pk = outbox.send(to=["ada@example.com"], subject="hi", text="hello")
    settings = settings_for(database_url, smtp_server.port, WORKER_SHUTDOWN_GRACE="0.1")
    worker = await stop_during_transaction(settings, smtp_server, after=0)

    row = row_of(outbox.engine, message_pk)
    assert (row.status, row.attempts) == ("queued", 0)
    assert flags(outbox.engine) == [("ada@example.com", "interrupted", True)]
    assert (worker.stats.released, worker.stats.possible_duplicates) == (1, 1)


async def test_a_stop_after_a_later_final_dot_flags_only_that_transaction(
    outbox: Outbox, database_url: str, smtp_server: SMTPTestServer
) -> None:
    # One recipient a transaction: Ada's is accepted; the stop comes while Bob's content
    # waits for its reply. Bob may have it; Cy was not reached.
    recipients = ["ada@example.com", "bob@example.com", "cy@example.com"]
    outbox.send(to=recipients, subject="hi", text="hello")
    settings = one_recipient_a_transaction(database_url, smtp_server.port)
    worker = await stop_during_transaction(settings, smtp_server, after=1)

    assert flags(outbox.engine) == [
        ("ada@example.com", "sent", False),
        ("bob@example.com", "interrupted", True),
        ("cy@example.com", "interrupted", False),
    ]
    assert (worker.stats.sent, worker.stats.possible_duplicates) == (1, 1)


async def test_a_stop_before_the_final_dot_flags_nothing(outbox: Outbox, database_url: str) -> None:
    # The relay stopped reading the content: the final dot never left, nothing can be there.
    outbox.send(to=["ada@example.com"], subject="figures", text="figures\n" * 600_000)
    worker, _ = await stop_a_stalled_send(database_url, StallAt.CONTENT, grace="0.1")
    assert flags(outbox.engine) == [("ada@example.com", "interrupted", False)]
    assert worker.stats.possible_duplicates == 0
