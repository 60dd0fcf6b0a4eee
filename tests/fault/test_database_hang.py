"""A database that hangs (not refuses: hangs) must not keep a worker from stopping.

Each test runs ``python -m mailroom worker`` as a subprocess while the test holds the outbox
locked, as another session would: a SQLite connection inside ``BEGIN EXCLUSIVE``, or a
PostgreSQL transaction holding ``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE``. Every statement
of the worker then waits. Before the fix, SIGTERM left such a worker waiting for ever (the
claim and the outcome writes ran in a thread nobody stopped waiting for, which the
interpreter then joined at exit). Also a PostgreSQL "server" that accepts the connection and
never answers: without a connect timeout, the worker hung at its first connection.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from mailroom.delivery import recording
from mailroom.outbox import database
from mailroom.outbox.database import CONNECT_TIMEOUT, VERSION_TABLE
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from support import worker_process
from support.processes import Spawn
from support.smtp_server import SMTPTestServer
from support.worker_process import worker_args, worker_env

STARTUP = 8.0  # seconds a worker process may take to start, and slack for a loaded machine
GRACE = 3.0  # WORKER_SHUTDOWN_GRACE
AFTER_END = recording.RECORD_AFTER_END


def prepare(database_url: str, port: int, **extra: str) -> tuple[dict[str, str], Outbox]:
    settings = {"WORKER_POLL_INTERVAL": "0.2", "WORKER_SHUTDOWN_GRACE": str(GRACE), **extra}
    return worker_process.prepare(database_url, port, **settings)


class Output:
    """A process's stderr, read as it comes (so a test can wait for a line)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def wait_for(self, fragment: str, within: float) -> None:
        deadline = time.monotonic() + within
        while not any(fragment in line for line in self.lines):
            if time.monotonic() > deadline:
                pytest.fail(f"no line with {fragment!r} within {within:g} s: {self.lines}")
            time.sleep(0.05)

    def text(self) -> str:
        self._reader.join(timeout=5)
        return "\n".join(self.lines)


def failed_exit(process: subprocess.Popen[bytes], output: Output, within: float) -> float:
    """Wait for the worker to exit, with status 1, within ``within`` seconds; return how long
    it took."""
    started = time.monotonic()
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the worker did not exit within {within:g} s:\n{output.text()[-3000:]}")
    took = time.monotonic() - started
    assert process.returncode == 1, output.text()
    return took


@contextlib.contextmanager
def database_locked(database_url: str, tables: tuple[str, ...]) -> Iterator[None]:
    """Hold ``tables`` locked (SQLite: the whole database) from another session."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        connection = sqlite3.connect(url.database, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            yield
            connection.execute("ROLLBACK")
        finally:
            connection.close()
        return
    engine = database.create_outbox_engine(database_url)
    try:
        with engine.connect() as session:
            for table in tables:
                session.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
            yield
            session.rollback()
    finally:
        engine.dispose()


def statuses(outbox: Outbox) -> list[Any]:
    with outbox.engine.connect() as connection:
        query = select(messages.c.status, messages.c.lease_expires_at).order_by(messages.c.id)
        return list(connection.execute(query))


def arrivals(server: SMTPTestServer) -> Counter[bytes]:
    found = Counter[bytes]()
    for received in server.scripted.received:
        for line in received.data.splitlines():
            if line.lower().startswith(b"message-id:"):
                found[line.split(b":", 1)[1].strip()] += 1
    return found


def stored_ids(outbox: Outbox) -> set[bytes]:
    with outbox.engine.connect() as connection:
        return {m.encode() for m in connection.execute(select(messages.c.message_id)).scalars()}


def the_database_error(output: Output) -> str:
    """The one error line the command printed, which names DATABASE_URL (and no traceback)."""
    printed = output.text()
    assert "Traceback" not in printed, printed
    error = [line for line in printed.splitlines() if "error" in line.lower()]
    assert len(error) == 1, printed
    assert "DATABASE_URL" in error[0]
    return error[0]


def test_sigterm_while_the_start_up_checks_wait_on_a_locked_database(
    database_url: str, spawn: Spawn, smtp_server: SMTPTestServer
) -> None:
    env, outbox = prepare(database_url, smtp_server.port)
    for i in range(3):
        outbox.send(to=[f"reader{i}@example.com"], subject="news", text="hello")
    with database_locked(database_url, (messages.name, VERSION_TABLE)):
        worker = spawn(worker_args(), env)
        output = Output(worker)
        output.wait_for("worker starting", STARTUP)
        time.sleep(1.0)  # in its start-up checks now, waiting on the lock
        worker.send_signal(signal.SIGTERM)
        took = failed_exit(worker, output, within=5)
    assert took < 3
    assert "stopped before the database answered" in the_database_error(output)
    assert [row.status for row in statuses(outbox)] == ["queued"] * 3

    # Nothing was claimed: a worker on the released database sends each message once.
    again = spawn(worker_args("--once"), env)
    _, err = again.communicate(timeout=STARTUP + 10)
    assert again.returncode == 0, err.decode()
    assert [row.status for row in statuses(outbox)] == ["sent"] * 3
    assert arrivals(smtp_server) == dict.fromkeys(stored_ids(outbox), 1)
    outbox.dispose()


@pytest.mark.parametrize(
    "throttle",
    [{}, {"EMAIL_BURST": "100", "EMAIL_BURST_PAUSE": "1"}],
    ids=["unthrottled", "throttled"],  # the throttle's transactions wait on the lock too
)
def test_sigterm_while_claims_and_outcome_writes_wait_on_a_locked_database(
    database_url: str, spawn: Spawn, smtp_server: SMTPTestServer, throttle: dict[str, str]
) -> None:
    lease = 15.0
    env, outbox = prepare(
        database_url,
        smtp_server.port,
        WORKER_LEASE_SECONDS=str(lease),
        EMAIL_TIMEOUT="5",
        **throttle,
    )
    for i in range(3):
        outbox.send(to=[f"reader{i}@example.com"], subject="news", text="hello")
    smtp_server.scripted.delays["DATA"] = 1.5  # the sends are in flight when the lock comes
    worker = spawn(worker_args("--concurrency", "3"), env)
    output = Output(worker)
    deadline = time.monotonic() + STARTUP + 5
    while smtp_server.scripted.connections < 3:  # all three sends under way
        assert time.monotonic() < deadline, output.lines
        time.sleep(0.05)

    with database_locked(database_url, (messages.name,)):
        worker.send_signal(signal.SIGTERM)
        took = failed_exit(worker, output, within=GRACE + AFTER_END + STARTUP)
    # The sends finished within the grace; their outcomes then waited AFTER_END at most.
    assert took < GRACE + AFTER_END + 3
    assert "could not record what happened to 3 message(s)" in the_database_error(output)
    assert sum(arrivals(smtp_server).values()) == 3

    # Not lost: still leased, they are taken back when the lease runs out and sent again
    # (at-least-once: the relay has them twice, each with its own Message-ID).
    rows = statuses(outbox)
    assert [row.status for row in rows] == ["sending"] * 3
    time.sleep(max(0.0, max(row.lease_expires_at for row in rows) - time.time() + 0.5))
    smtp_server.scripted.delays.clear()
    again = spawn(worker_args("--once"), env)
    _, err = again.communicate(timeout=STARTUP + 10)
    assert again.returncode == 0, err.decode()
    assert [row.status for row in statuses(outbox)] == ["sent"] * 3
    assert arrivals(smtp_server) == dict.fromkeys(stored_ids(outbox), 2)
    outbox.dispose()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def silent_database_env(port: int) -> dict[str, str]:
    url = f"postgresql://mailroom:Secret-pw-9@127.0.0.1:{port}/outbox"
    return worker_env({"DATABASE_URL": url, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": "1"})


def test_a_postgresql_server_that_never_answers_ends_the_worker_within_the_connect_timeout(
    spawn: Spawn,
) -> None:
    with silent_server() as port:
        worker = spawn(worker_args(), silent_database_env(port))
        output = Output(worker)
        failed_exit(worker, output, within=CONNECT_TIMEOUT + 2.0 + STARTUP)
    assert "Secret-pw-9" not in output.text()
    error = the_database_error(output)
    assert "cannot connect" in error
    assert "did not answer in time" in error


def test_sigterm_while_connecting_to_a_postgresql_server_that_never_answers(
    spawn: Spawn,
) -> None:
    with silent_server() as port:
        worker = spawn(worker_args(), silent_database_env(port))
        output = Output(worker)
        output.wait_for("worker starting", STARTUP + CONNECT_TIMEOUT)
        time.sleep(0.5)
        worker.send_signal(signal.SIGTERM)
        took = failed_exit(worker, output, within=5)
    assert took < 3
    the_database_error(output)
