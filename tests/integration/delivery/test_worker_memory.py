"""A worker's memory is bounded by bytes (``WORKER_MAX_BATCH_BYTES``), not by message count.

Large messages: a batch of 250 claimed at once, each up to 25 MiB, would be gigabytes. The
worker claims no more bytes than its budget (always at least one message) and lets go of
each body once it is sent. Measured on a real worker process against a real SMTP sink.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update

from mailroom.config import SETTING_NAMES, load_settings
from mailroom.message import Message
from mailroom.outbox import database, lease_queries
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status
from support.smtp_server import ScriptedHandler, ServerFactory

MIB = 1024 * 1024


class DiscardingHandler(ScriptedHandler):
    """Accepts every message and keeps only a count: the sink must not hold 300 MB itself."""

    accepted = 0

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        type(self).accepted += 1
        envelope.content = envelope.original_content = b""
        return "250 2.0.0 OK"


def large_outbox(path: Path, count: int, size: int) -> Outbox:
    """``count`` queued messages of about ``size`` bytes each (text lines, as built mail is)."""
    outbox = Outbox(load_settings(environ={"DATABASE_URL": f"sqlite:///{path}"}))
    database.upgrade(outbox.engine)
    ids = outbox.send_many(
        [Message(to=[f"u{n}@example.com"], subject=f"big {n}", text="x") for n in range(count)]
    )
    line = b"y" * 998 + b"\r\n"
    filler = line * (size // len(line))
    with outbox.engine.begin() as connection:
        for message_pk in ids:
            row = connection.execute(
                select(messages.c.data).where(messages.c.id == message_pk)
            ).one()
            connection.execute(
                update(messages).where(messages.c.id == message_pk).values(data=row.data + filler)
            )
    return outbox


def _high_water_mark(pid: int) -> int | None:
    """The process's peak RSS so far (VmHWM), in bytes; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def run_worker_measuring_peak(env: dict[str, str]) -> tuple[int, str, int]:
    """Run ``mailroom worker --once``; its exit status, output, and peak RSS in bytes.

    The peak is the worker's own VmHWM, read while it runs. Not ``wait4``'s ``ru_maxrss``:
    Linux carries the high-water mark of the address space the child had before ``exec``
    into it, and a child spawned with vfork had the test runner's (hundreds of MB late in a
    full run), which made this test measure pytest instead of the worker.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "mailroom", "worker", "--once", "--concurrency", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            mark = _high_water_mark(process.pid)
            if mark is not None:
                peak = max(peak, mark)
            done.wait(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        output, _ = process.communicate(timeout=180)
    finally:
        done.set()
        watcher.join()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert peak > 0, "the worker's memory could not be read from /proc"
    return process.returncode, output.decode(), peak


def test_a_worker_holds_no_more_message_bytes_than_its_budget(
    tmp_path: Path, smtp_server_factory: ServerFactory
) -> None:
    count, size = 20, 6 * MIB  # 120 MiB queued
    outbox = large_outbox(tmp_path / "outbox.db", count, size)
    outbox.dispose()
    DiscardingHandler.accepted = 0
    server = smtp_server_factory(handler=DiscardingHandler(), data_size_limit=64 * MIB)
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SETTING_NAMES and not name.startswith(("EMAIL_", "MAILROOM_"))
    }
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "WORKER_MAX_BATCH_BYTES": str(8 * MIB),
    }
    code, output, peak = run_worker_measuring_peak(env)
    assert code == 0, output
    assert f"sent {count}," in output
    assert DiscardingHandler.accepted == count
    # Holding every claimed body (the old count-only claim) peaked at 220 MiB here; with an
    # 8 MiB budget about 130: the interpreter and libraries (~70), the bodies held (8 MiB +
    # one message) and the copies made while two are on the wire.
    assert peak < 175 * MIB, f"worker peak RSS {peak // MIB} MiB"


@pytest.mark.parametrize("budget", [1, 250_000, 450_000, None])
def test_claim_respects_the_byte_budget_and_takes_at_least_one(
    database_url: str, budget: int | None
) -> None:
    outbox = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    database.upgrade(outbox.engine)
    try:
        outbox.send_many(
            [
                Message(to=[f"u{n}@example.com"], subject=f"n{n}", text=f"{n}" * 100_000)
                for n in range(1, 6)
            ]
        )
        with outbox.engine.connect() as connection:
            sizes = [
                len(row.data)
                for row in connection.execute(select(messages.c.data).order_by(messages.c.id))
            ]
        with outbox.engine.begin() as connection:
            claimed = lease_queries.claim_due(
                connection,
                now=9e9,
                limit=10,
                lease_token="t",
                lease_until=9e9,
                max_bytes=budget,
            )
        # The most urgent first, as many as fit the budget, and never none.
        expected = 1
        while expected < 5 and (budget is None or sum(sizes[: expected + 1]) <= budget):
            expected += 1
        assert {1: 1, 250_000: 2, 450_000: 4, None: 5}[budget] == expected  # the sizes as meant
        assert [len(m.data) for m in claimed] == sizes[:expected]
        assert [m.recipients for m in claimed] == [
            (f"u{n}@example.com",) for n in range(1, expected + 1)
        ]
        counts = outbox.counts()
        assert counts[Status.SENDING] == expected
        assert counts[Status.QUEUED] == 5 - expected
    finally:
        outbox.dispose()
