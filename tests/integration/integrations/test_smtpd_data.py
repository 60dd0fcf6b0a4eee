"""How ``mailroom smtpd`` reads DATA (its own reader, in runs up to each ``.CRLF``), byte by
byte over a raw socket from a trusted address: where a message ends and where it does not,
dot-stuffing, content split anywhere across packets, and aiosmtpd's limits and replies."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import messages
from support.smtpd_port import split_received
from support.smtpd_process import SmtpdProcess

TRUSTED = "127.0.0.2"
MAX_SIZE = 5_000
HEADER = b"From: app@example.com\r\nTo: ada@example.com\r\nSubject: s\r\n"
DATED = HEADER + b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m@example.com>\r\n\r\n"


class Client:
    """A raw SMTP client: what it writes is exactly what goes on the wire."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=10, source_address=(TRUSTED, 0)
        )
        self.buffer = b""
        assert self.reply().startswith(b"220")
        self.command(b"EHLO test")

    def reply(self) -> bytes:
        """One whole reply (every line of a multi-line one)."""
        while True:
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if line[3:4] == b" ":
                    self.buffer = b"\r\n".join(lines[index + 1 :])
                    return b"\r\n".join(lines[: index + 1])
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buffer += chunk

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def transaction(self, *pieces: bytes, pause: float = 0.0) -> bytes:
        """MAIL, RCPT, DATA, then ``pieces`` one send each (``pause`` between): the reply to
        the content."""
        assert self.command(b"MAIL FROM:<app@example.com>").startswith(b"250")
        assert self.command(b"RCPT TO:<ada@example.com>").startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")
        for piece in pieces:
            self.sock.sendall(piece)
            if pause:
                time.sleep(pause)
        return self.reply()


@pytest.fixture
def smtpd(tmp_path: Path) -> Iterator[tuple[SmtpdProcess, Engine]]:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    engine = create_outbox_engine(url)
    database.upgrade(engine)
    env = {
        "DATABASE_URL": url,
        "SMTPD_TRUSTED_NETWORKS": TRUSTED,
        "SMTPD_MAX_MESSAGE_SIZE": str(MAX_SIZE),
    }
    with SmtpdProcess(env, cwd=tmp_path) as process:
        yield process, engine
    engine.dispose()


def stored(engine: Engine) -> list[bytes]:
    """Each message stored, below the port's ``Received`` field."""
    with engine.connect() as connection:
        return [
            split_received(bytes(d))[1]
            for d in connection.execute(select(messages.c.data).order_by(messages.c.id)).scalars()
        ]


def test_only_a_dot_alone_on_a_line_ends_the_message(smtpd: tuple[SmtpdProcess, Engine]) -> None:
    process, engine = smtpd
    client = Client(process.port)
    body = b"It ends with a dot.\r\nSo does this.\r\n..stuffed line\r\n.\r\n"
    assert client.transaction(DATED + body).startswith(b"250 2.0.0")
    assert stored(engine) == [DATED + b"It ends with a dot.\r\nSo does this.\r\n.stuffed line\r\n"]


def test_a_message_split_anywhere_across_packets_reads_the_same(
    smtpd: tuple[SmtpdProcess, Engine],
) -> None:
    process, engine = smtpd
    client = Client(process.port)
    whole = DATED + b"line one.\r\n" + b"x" * 900 + b"\r\n.\r\n"
    for cut in (len(whole) - 1, len(whole) - 2, len(whole) - 3, len(whole) - 4, len(whole) - 5, 30):
        reply = client.transaction(whole[:cut], whole[cut:], pause=0.05)
        assert reply.startswith(b"250 2.0.0"), (cut, reply)
    assert stored(engine) == [DATED + b"line one.\r\n" + b"x" * 900 + b"\r\n"] * 6


def test_a_bare_lf_before_the_dot_does_not_end_it_and_is_refused(
    smtpd: tuple[SmtpdProcess, Engine],
) -> None:
    process, engine = smtpd
    client = Client(process.port)
    # "SMTP smuggling": to a lenient reader "\n.\r\n" ends the message, and what follows
    # would be a second one. Here the message goes on to the real end, and is refused.
    smuggled = DATED + b"first\n.\r\nMAIL FROM:<evil@example.com>\r\n.\r\n"
    reply = client.transaction(smuggled)
    assert reply.startswith(b"550 5.6.0"), reply
    assert client.command(b"NOOP").startswith(b"250")
    assert stored(engine) == []


def test_an_empty_message_and_the_limits_get_aiosmtpds_replies_and_the_session_goes_on(
    smtpd: tuple[SmtpdProcess, Engine],
) -> None:
    process, engine = smtpd
    client = Client(process.port)
    assert client.transaction(b".\r\n").startswith(b"550 5.6.0")  # no From: refused by us
    assert client.transaction(DATED + (b"y" * 998 + b"\r\n") * 6 + b".\r\n").startswith(b"552")
    assert client.transaction(DATED + b"z" * 1000 + b"\r\n.\r\n").startswith(b"500 Line too long")
    assert client.transaction(DATED + b"fine\r\n.\r\n").startswith(b"250 2.0.0")
    assert stored(engine) == [DATED + b"fine\r\n"]
