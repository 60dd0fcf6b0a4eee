"""The submission port's idle timeout (RFC 5321 §4.5.3.2.7), which the protocol moves with
each command without a new timer: a quiet connection is closed once its time is up (and
counted out of the port's connections), and one that keeps talking is not closed at the
first deadline it had."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.config import load_settings
from mailroom.integrations.smtpd.connections import ConnectionLimits
from mailroom.integrations.smtpd.handler import SubmissionHandler
from mailroom.integrations.smtpd.protocol import SubmissionSMTP
from mailroom.integrations.smtpd.server import policy_of
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.raw_submissions import SubmissionWriter

IDLE = 0.4  # seconds


@pytest.fixture
def connections() -> ConnectionLimits[SubmissionSMTP]:
    return ConnectionLimits(10, 10)


@pytest.fixture
def port(tmp_path: Path, connections: ConnectionLimits[SubmissionSMTP]) -> Iterator[int]:
    """A submission port with an idle timeout of :data:`IDLE`, served by a loop in a thread."""
    engine = create_outbox_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    loop = asyncio.new_event_loop()
    writer = SubmissionWriter(engine, loop)
    handler = SubmissionHandler(policy_of(load_settings(environ={})), engine, writer)
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SubmissionSMTP(
                handler, connections, hostname="mx.example.com", timeout=IDLE, loop=loop
            ),
            "127.0.0.1",
            0,
        )
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert writer.close(10)
        loop.close()
        engine.dispose()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert client.recv(1024).startswith(b"220")
    return client


def closed_within(client: socket.socket, seconds: float) -> float:
    """Seconds until the server closed ``client`` (reading and dropping what it sends)."""
    started = time.monotonic()
    client.settimeout(seconds)
    while client.recv(1024):
        pass
    return time.monotonic() - started


def test_a_quiet_connection_is_closed_once_its_time_is_up(
    port: int, connections: ConnectionLimits[SubmissionSMTP]
) -> None:
    client = connect(port)
    assert len(connections) == 1
    assert IDLE * 0.8 < closed_within(client, 5) < IDLE + 2
    assert len(connections) == 0  # the server closed it: counted out before the client saw


def test_each_command_moves_the_deadline(port: int) -> None:
    client = connect(port)
    started = time.monotonic()
    while time.monotonic() - started < IDLE * 3:  # well past the first deadline
        time.sleep(IDLE / 4)
        client.sendall(b"NOOP\r\n")
        assert client.recv(1024).startswith(b"250")
    # And quiet from the last command on: closed one timeout after it, not before.
    assert IDLE * 0.8 < closed_within(client, 5) < IDLE + 2
