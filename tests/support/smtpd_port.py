"""A running ``mailroom smtpd`` with a certificate and its own outbox, for the tests that
submit to it with smtplib (``tests/integration/integrations/test_smtpd*.py``):

    port = start_port(tls, tmp_path, database_url, SMTPD_MAX_CONNECTIONS="4")
    with port.session(port.key()) as client:
        client.sendmail("app@example.com", ["ada@example.com"], submitted("Hello"))
    (row,) = port.rows()

and what a message looks like once stored: the port's ``Received`` field on top of the bytes
as submitted (:func:`split_received`).
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from mailroom.access.apikeys import create_api_key
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import messages
from mailroom.outbox.vocabulary import ApiKeyScope
from support.smtpd_process import SmtpdProcess
from support.tls_files import TLSFiles

__all__ = [
    "MAX_SIZE",
    "TRUSTED",
    "Port",
    "raw_transaction",
    "running_port",
    "split_received",
    "start_port",
    "submitted",
]

TRUSTED = "127.0.0.2"  # on loopback, like every 127/8 address: a client may bind it
MAX_SIZE = 20_000

_RECEIVED = re.compile(rb"Received: from [^\r\n]*\r\n\tby [^\r\n]*;\r\n\t[^\r\n]*\r\n")
"""The port's field: three lines, folded before ``by`` and before the date."""


def submitted(subject: str = "Hello", *, extra_headers: str = "") -> bytes:
    return (
        "From: App <app@example.com>\r\n"
        "To: ada@example.com\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Line one.\r\n"
        ".A line that starts with a dot.\r\n"
    ).encode()


def split_received(stored: bytes) -> tuple[str, bytes]:
    """The ``Received`` field the port put on top of ``stored`` (unfolded: its CRLFs taken
    out, RFC 5322 §2.2.3), and the bytes below it."""
    found = _RECEIVED.match(stored)
    assert found is not None, f"no Received field of the port's on top: {stored[:300]!r}"
    field = found.group().decode("ascii")
    return field[: -len("\r\n")].replace("\r\n", ""), stored[found.end() :]


def raw_transaction(client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT and DATA with ``data`` sent as it is (smtplib's ``data`` would turn a bare
    LF into CRLF); the reply to the final dot."""
    assert client.mail("app@example.com")[0] == 250
    assert client.rcpt("ada@example.com")[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(data + b".\r\n")
    return client.getreply()


@dataclass
class Port:
    """A running ``mailroom smtpd`` on its own outbox."""

    process: SmtpdProcess
    engine: Engine
    client_tls: ssl.SSLContext
    env: dict[str, str]

    def key(self, name: str = "app", scope: ApiKeyScope = ApiKeyScope.SEND) -> str:
        with self.engine.begin() as connection:
            _, plaintext = create_api_key(connection, name=name, scope=scope, now=time.time())
        return plaintext

    def connect(self, source: str = "127.0.0.1") -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.process.port, timeout=15, source_address=(source, 0))

    def session(self, key: str) -> smtplib.SMTP:
        """Connected, STARTTLS done and authenticated with ``key``."""
        client = self.connect()
        client.starttls(context=self.client_tls)
        client.login("any-user-name", key)
        return client

    def rows(self) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(select(messages).order_by(messages.c.id)))


def _certificate(tls: TLSFiles, folder: Path) -> dict[str, str]:
    cert = tls.ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = folder / "smtpd-cert.pem", folder / "smtpd-key.pem"
    for blob in cert.cert_chain_pems:
        with certfile.open("ab") as out:
            out.write(blob.bytes())
    cert.private_key_pem.write_to_path(str(keyfile))
    return {"SMTPD_TLS_CERTFILE": str(certfile), "SMTPD_TLS_KEYFILE": str(keyfile)}


def _client_tls(tls: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context()
    tls.ca.configure_trust(context)
    return context


def start_port(
    tls: TLSFiles, folder: Path, database_url: str, *, certificate: bool = True, **settings: str
) -> Port:
    """``mailroom smtpd`` on ``database_url`` (migrated first), trusting :data:`TRUSTED`, with
    small limits (3 recipients, :data:`MAX_SIZE` bytes, 5 messages a minute) unless
    ``settings`` say otherwise; without ``certificate``, no STARTTLS (AUTH on loopback)."""
    env = {
        "DATABASE_URL": database_url,
        "SMTPD_TRUSTED_NETWORKS": TRUSTED,
        "SMTPD_MAX_RECIPIENTS": "3",
        "SMTPD_MAX_MESSAGE_SIZE": str(MAX_SIZE),
        "SMTPD_RATE_LIMIT": "5",
        "SMTPD_SHUTDOWN_GRACE": "2",
        **(_certificate(tls, folder) if certificate else {}),
        **settings,
    }
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    process = SmtpdProcess(env, cwd=folder).start()
    return Port(process, engine, _client_tls(tls), env)


@contextmanager
def running_port(
    tls: TLSFiles, folder: Path, database_url: str, *, certificate: bool = True, **settings: str
) -> Iterator[Port]:
    """:func:`start_port`, killed and its engine disposed of on the way out."""
    port = start_port(tls, folder, database_url, certificate=certificate, **settings)
    try:
        yield port
    finally:
        port.process.kill()
        port.engine.dispose()
