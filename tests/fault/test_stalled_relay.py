"""Relays that go quiet, against real worker processes: nothing hangs, nothing stays ``sending``.

Each test runs ``python -m mailroom worker`` as a subprocess against a
:class:`~stalling_relay.StallingRelay` in the test's own event loop: one that never greets,
one that never answers MAIL, and one that answers DATA with 354 and then stops reading while
a message of several MB is being written (the case that used to hang a worker for ever,
deaf to SIGTERM, until its lease expired and the message was sent again).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

import pytest
from sqlalchemy import select

from mailroom.outbox.schema import attempts, messages
from mailroom.outbox.store import Outbox
from support.processes import Spawn
from support.stalling_relay import StallAt, StallingRelay
from support.worker_process import prepare, worker_args

EMAIL_TIMEOUT = 1.0
STARTUP = 8.0  # seconds a worker process may take to start and to write its outcomes
BIG_TEXT = "Quarterly figures, line after line of them.\n" * 120_000  # about 5 MB


async def finished(process: subprocess.Popen[bytes], within: float) -> float:
    """Wait for ``process`` to exit (polling, so the relay in this loop keeps running);
    return how long it took. Fails the test if it is still running after ``within``."""
    started = time.monotonic()
    while process.poll() is None:
        if time.monotonic() - started > within:
            process.kill()
            _, err = process.communicate()
            pytest.fail(f"the worker did not exit within {within:g} s:\n{err.decode()[-3000:]}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def message_row(outbox: Outbox, message_pk: int) -> Any:
    with outbox.engine.connect() as connection:
        return connection.execute(select(messages).where(messages.c.id == message_pk)).one()


def attempt_outcomes(outbox: Outbox, message_pk: int) -> list[str]:
    with outbox.engine.connect() as connection:
        query = select(attempts.c.outcome).where(attempts.c.message_pk == message_pk)
        return list(connection.execute(query).scalars())


@pytest.mark.parametrize(
    ("stall_at", "size"),
    [(StallAt.GREETING, 1), (StallAt.MAIL, 1), (StallAt.CONTENT, len(BIG_TEXT))],
    ids=["silent-greeting", "silent-after-MAIL", "stops-reading-after-354"],
)
async def test_worker_once_returns_within_its_timeouts_and_defers_the_message(
    database_url: str, spawn: Spawn, stall_at: StallAt, size: int
) -> None:
    async with StallingRelay(stall_at) as relay:
        env, outbox = prepare(
            database_url,
            relay.port,
            EMAIL_TIMEOUT=str(EMAIL_TIMEOUT),
            EMAIL_MAX_ATTEMPTS="3",
        )
        message_pk = outbox.send(to=["ada@example.com"], subject="figures", text=BIG_TEXT[:size])
        worker = spawn(worker_args("--once"), env)
        # Before the fix the stalled DATA hung here for ever (the lease is 300 s).
        await finished(worker, within=EMAIL_TIMEOUT * 4 + STARTUP)
        _, err = worker.communicate()
        assert worker.returncode == 0, err.decode()
        assert relay.stalled.is_set()

    row = message_row(outbox, message_pk)
    assert row.status == "deferred"
    assert row.attempts == 1
    assert row.lease_token is None
    assert "did not answer" in row.last_error or "stopped reading" in row.last_error
    assert attempt_outcomes(outbox, message_pk) == ["deferred"]
    outbox.dispose()


async def test_sigterm_ends_a_worker_stuck_in_a_send_within_the_grace_and_requeues(
    database_url: str, spawn: Spawn
) -> None:
    grace = 1.0
    async with StallingRelay(StallAt.CONTENT) as relay:
        env, outbox = prepare(
            database_url,
            relay.port,
            # Far longer than the test: only the shutdown grace can end this send.
            EMAIL_TIMEOUT="600",
            WORKER_SHUTDOWN_GRACE=str(grace),
        )
        message_pk = outbox.send(to=["ada@example.com"], subject="figures", text=BIG_TEXT)
        worker = spawn(worker_args(), env)
        await asyncio.wait_for(relay.stalled.wait(), STARTUP + 10)
        await asyncio.sleep(0.5)  # the socket buffers fill; the worker is writing, paused
        assert message_row(outbox, message_pk).status == "sending"

        worker.send_signal(signal.SIGTERM)
        took = await finished(worker, within=grace + 5)
        _, err = worker.communicate()
        assert worker.returncode == 0, err.decode()
        assert took >= grace * 0.9  # it did give the send its grace

    row = message_row(outbox, message_pk)
    assert row.status == "queued"  # back in the queue at once, not left to its lease
    assert row.lease_token is None
    assert row.lease_expires_at is None
    assert row.attempts == 0  # a shutdown is no failure of the message
    assert row.due_at <= time.time()
    assert "WORKER_SHUTDOWN_GRACE" in row.last_error
    assert attempt_outcomes(outbox, message_pk) == ["interrupted"]
    assert b"WORKER_SHUTDOWN_GRACE" in err
    outbox.dispose()


async def test_a_second_sigterm_aborts_at_once(database_url: str, spawn: Spawn) -> None:
    async with StallingRelay(StallAt.CONTENT) as relay:
        env, outbox = prepare(
            database_url, relay.port, EMAIL_TIMEOUT="600", WORKER_SHUTDOWN_GRACE="600"
        )
        message_pk = outbox.send(to=["ada@example.com"], subject="figures", text=BIG_TEXT)
        worker = spawn(worker_args(), env)
        await asyncio.wait_for(relay.stalled.wait(), STARTUP + 10)
        worker.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert worker.poll() is None  # the first one waits for the grace
        worker.send_signal(signal.SIGTERM)
        await finished(worker, within=5)
        assert worker.returncode == 0, worker.communicate()[1].decode()

    row = message_row(outbox, message_pk)
    assert (row.status, row.attempts, row.lease_token) == ("queued", 0, None)
    outbox.dispose()
