"""``mailroom smtpd``'s connection limits, against the real process: a connection over
``SMTPD_MAX_CONNECTIONS_PER_CLIENT`` or ``SMTPD_MAX_CONNECTIONS`` is told ``421 4.7.0`` in
place of the greeting and closed; one let in is counted out however it ends (QUIT, a reset,
an end in the middle of DATA, after STARTTLS); the trusted networks are held to the total
only; and the refusals are logged once a burst."""

from __future__ import annotations

import re
import smtplib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.smtpd_port import TRUSTED, Port, running_port, submitted
from support.tls_files import TLSFiles

HOSTNAME = "mx.example.test"
REFUSED = f"4.7.0 {HOSTNAME} Too many connections, try again later".encode()
OTHER = "127.0.0.3"
THIRD = "127.0.0.4"


@pytest.fixture
def port(tls: TLSFiles, tmp_path: Path) -> Iterator[Port]:
    """At most 4 connections, 2 from one address outside the trusted networks."""
    with running_port(
        tls,
        tmp_path,
        f"sqlite:///{tmp_path / 'outbox.db'}",
        SMTPD_MAX_CONNECTIONS="4",
        SMTPD_MAX_CONNECTIONS_PER_CLIENT="2",
        EMAIL_LOCAL_HOSTNAME=HOSTNAME,
        SMTPD_RATE_LIMIT="0",
    ) as started:
        yield started


def refused(port: Port, source: str) -> None:
    with pytest.raises(smtplib.SMTPConnectError) as error:
        port.connect(source)
    assert (error.value.smtp_code, error.value.smtp_error) == (421, REFUSED)


def let_in(port: Port, source: str) -> smtplib.SMTP:
    """A connection from ``source``, tried again while it is refused: the server learns that
    a connection closed a moment after its client closed it."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return port.connect(source)
        except smtplib.SMTPConnectError as error:
            refusal = (error.smtp_code, error.smtp_error)
        assert refusal == (421, REFUSED)
        assert time.monotonic() < deadline, f"{source} still refused after 10 s"
        time.sleep(0.05)


def reset(client: smtplib.SMTP) -> None:
    """Close with a TCP reset rather than QUIT (or even a FIN)."""
    assert client.sock is not None
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # its file too, which holds the socket open


def test_over_the_limit_per_client_is_421_and_each_way_of_ending_counts_out(port: Port) -> None:
    first, second = port.connect(), port.connect()
    refused(port, "127.0.0.1")
    with socket.create_connection(("127.0.0.1", port.process.port), timeout=10) as raw:
        assert raw.recv(1024) == b"421 " + REFUSED + b"\r\n"
        assert raw.recv(1024) == b""  # and closed
    other = port.connect(OTHER)  # another client has its own count
    assert other.noop()[0] == 250

    first.quit()
    third = let_in(port, "127.0.0.1")
    refused(port, "127.0.0.1")
    reset(second)
    fourth = let_in(port, "127.0.0.1")

    # In the middle of DATA, without QUIT: the half message is not taken.
    third.starttls(context=port.client_tls)
    third.login("app", port.key())
    third.mail("app@example.com")
    third.rcpt("ada@example.com")
    third.putcmd("data")
    assert third.getreply()[0] == 354
    third.send(b"From: app@example.com\r\n\r\nhalf")
    third.close()
    fifth = let_in(port, "127.0.0.1")

    # STARTTLS hands the connection a new transport: still one connection, counted out once.
    fifth.starttls(context=port.client_tls)
    fifth.login("app", port.key())
    assert fifth.sendmail("app@example.com", ["ada@example.com"], submitted("TLS")) == {}
    refused(port, "127.0.0.1")
    fifth.quit()
    sixth = let_in(port, "127.0.0.1")
    refused(port, "127.0.0.1")
    for client in (other, fourth, sixth):
        client.quit()

    assert [row.subject for row in port.rows()] == ["TLS"]
    assert port.process.stop() == 0
    warnings = [line for line in port.process.output.splitlines() if "refusing" in line]
    assert len(warnings) == 1, warnings  # one burst: one warning for all its refusals
    assert "2 connections are open from 127.0.0.1" in warnings[0]
    assert "SMTPD_MAX_CONNECTIONS_PER_CLIENT" in warnings[0]
    counted = re.search(r"(\d+) connections were refused with 421", port.process.output)
    assert counted is not None
    assert int(counted.group(1)) >= 5  # and those let_in saw before a close was counted


def test_the_trusted_networks_are_held_to_the_total_only(port: Port) -> None:
    trusted = [port.connect(TRUSTED) for _ in range(3)]  # over the 2 of one client
    other = port.connect(OTHER)
    refused(port, THIRD)  # the total: 4
    refused(port, TRUSTED)
    assert trusted[2].sendmail("app@example.com", ["ada@example.com"], submitted("Held")) == {}
    trusted[0].quit()
    let_in(port, THIRD).quit()
    for client in (*trusted[1:], other):
        client.quit()
    assert [row.subject for row in port.rows()] == ["Held"]
    assert port.process.stop() == 0
    (warning,) = [line for line in port.process.output.splitlines() if "refusing" in line]
    assert "4 connections are open, the limit (SMTPD_MAX_CONNECTIONS) is 4" in warning
