"""``mailroom smtpd`` as a real process: submitted over STARTTLS and AUTH with a real API key
(by Python's smtplib and by Debian's swaks), committed before the 250, delivered by a real
worker; and every refusal: a wrong key, no AUTH outside the trusted networks, too large, too
many recipients, too fast; a SIGKILL right after the 250, and a SIGTERM's bound."""

from __future__ import annotations

import contextlib
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailroom.access.apikeys import revoke_api_key
from mailroom.config import load_settings
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import events, messages
from support.service import service_env
from support.smtp_server import ScriptedHandler, ServerFactory
from support.smtpd_port import (
    MAX_SIZE,
    TRUSTED,
    Port,
    raw_transaction,
    running_port,
    split_received,
    start_port,
    submitted,
)
from support.tls_files import TLSFiles

STOP_WITHIN = 15.0  # seconds: SMTPD_SHUTDOWN_GRACE (2) and the process's own exit, with room


@pytest.fixture
def port(tls: TLSFiles, tmp_path: Path) -> Iterator[Port]:
    """A port on a SQLite outbox (the tests that also run on PostgreSQL start their own)."""
    with running_port(tls, tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}") as started:
        yield started


def test_smtplib_submits_over_starttls_and_a_worker_delivers_the_bytes_as_submitted(
    tls: TLSFiles, tmp_path: Path, database_url: str, smtp_server_factory: ServerFactory
) -> None:
    port = start_port(tls, tmp_path, database_url)
    try:
        key = port.key()
        data = submitted("Over STARTTLS")
        with port.session(key) as client:
            refused = client.sendmail(
                "app@example.com", ["ada@example.com", "hidden@example.com"], data
            )
            assert refused == {}
            helo = client.local_hostname
        assert port.process.stop() == 0
        (row,) = port.rows()
        assert row.sender == "app@example.com"
        assert row.recipients == ["ada@example.com", "hidden@example.com"]
        trace, below = split_received(bytes(row.data))
        assert below == data  # as submitted: Date and Message-ID were there
        assert trace.startswith(f"Received: from {helo} (unknown [127.0.0.1])\tby ")
        assert " (Mailroom) with ESMTPSA id " in trace
        assert row.message_id == "<Over.STARTTLS@example.com>"
        assert row.subject == "Over STARTTLS"
        assert row.stream == "transactional"
        assert row.status == "queued"
        assert row.smtputf8 is False
        assert row.extra is not None
        assert isinstance(row.extra["mailroom.api_key"], int)
        with port.engine.connect() as connection:
            queued = connection.execute(
                select(events.c.recipient).where(events.c.type == "queued")
            ).scalars()
            assert sorted(queued) == ["ada@example.com", "hidden@example.com"]

        handler = ScriptedHandler()
        relay = smtp_server_factory(handler=handler)
        worker = subprocess.run(
            [sys.executable, "-m", "mailroom", "worker", "--once"],
            env=service_env(
                {
                    "DATABASE_URL": database_url,
                    "MAILROOM_TRANSPORT": "smtp",
                    "EMAIL_HOST": "127.0.0.1",
                    "EMAIL_PORT": str(relay.port),
                }
            ),
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert worker.returncode == 0, worker.stderr.decode()
        (received,) = handler.received
        assert received.mail_from == "app@example.com"
        assert received.rcpt_tos == ["ada@example.com", "hidden@example.com"]
        assert received.data == bytes(row.data)
        ((status,),) = [(r.status,) for r in port.rows()]
        assert status == "sent"
    finally:
        port.process.kill()
        port.engine.dispose()


def test_swaks_submits_with_starttls_and_auth(tls: TLSFiles, port: Port) -> None:
    swaks = shutil.which("swaks")
    if swaks is None:
        if sys.platform == "linux" and shutil.which("apt-get"):
            pytest.fail("swaks is not installed: apt-get install -y swaks (.ci/run does)")
        pytest.skip("swaks is not installed")
    key = port.key("swaks")
    result = subprocess.run(
        [
            swaks,
            "--server",
            f"127.0.0.1:{port.process.port}",
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            str(tls.ca_path),
            "--auth",
            "LOGIN",
            "--auth-user",
            "swaks",
            "--auth-password",
            key,
            "--from",
            "app@example.com",
            "--to",
            "grace@example.com",
            "--header",
            "Subject: From swaks",
            "--body",
            "Sent by swaks.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  250 2.0.0 OK queued as" in result.stdout
    assert key not in result.stdout.replace(f"--auth-password {key}", "")
    (row,) = port.rows()
    assert row.recipients == ["grace@example.com"]
    assert row.subject == "From swaks"
    assert b"Sent by swaks." in bytes(row.data)


def test_a_wrong_or_revoked_key_is_535_and_auth_waits_for_starttls(port: Port) -> None:
    key = port.key()
    with port.connect() as client:
        client.ehlo()
        assert not client.has_extn("auth")  # a certificate is set: AUTH only after STARTTLS
        code, _ = client.docmd("AUTH", "PLAIN AGFwcABub3BlCg==")
        assert code == 538
        client.starttls(context=port.client_tls)
        client.ehlo()
        assert client.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login("app", key[:-2] + ("AA" if not key.endswith("AA") else "BB"))
        assert wrong.value.smtp_code == 535
        assert b"5.7.8" in wrong.value.smtp_error
    with port.engine.begin() as connection:
        revoke_api_key(connection, key.split("_")[1], time.time())
    with port.connect() as client:
        client.starttls(context=port.client_tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as revoked:
            client.login("app", key)
        assert revoked.value.smtp_code == 535
    assert port.rows() == []
    assert key not in port.process.output


def test_without_auth_only_the_trusted_networks_may_submit(port: Port) -> None:
    with port.connect() as client:
        client.starttls(context=port.client_tls)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("app@example.com", ["ada@example.com"], submitted("Untrusted"))
        assert refused.value.smtp_code == 530
        assert b"5.7.0 Authentication required" in refused.value.smtp_error
    assert port.rows() == []
    with port.connect(source=TRUSTED) as client:
        assert client.sendmail("app@example.com", ["ada@example.com"], submitted("Trusted")) == {}
    (row,) = port.rows()
    assert row.subject == "Trusted"
    assert row.extra is None  # no API key: no owner


def test_too_large_is_552_declared_or_not(port: Port) -> None:
    key = port.key()
    big = submitted("Big") + (b"z" * 998 + b"\r\n") * (MAX_SIZE // 1000)
    with port.session(key) as client:
        assert client.has_extn("size")
        assert int(client.esmtp_features["size"]) == MAX_SIZE
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.sendmail("app@example.com", ["ada@example.com"], big)  # SIZE= in MAIL
        assert declared.value.smtp_code == 552
        client.rset()
        assert client.mail("app@example.com")[0] == 250  # no SIZE: found out in DATA
        assert client.rcpt("ada@example.com")[0] == 250
        code, _ = client.data(big)
        assert code == 552
    assert port.rows() == []


def test_more_recipients_than_allowed_are_452_and_the_rest_are_taken(port: Port) -> None:
    key = port.key()
    recipients = [f"r{n}@example.com" for n in range(5)]
    with port.session(key) as client:
        refused = client.sendmail("app@example.com", recipients, submitted("Many"))
    assert set(refused) == {"r3@example.com", "r4@example.com"}
    assert refused["r3@example.com"] == (452, b"4.5.3 Too many recipients")
    (row,) = port.rows()
    assert row.recipients == recipients[:3]


def test_over_the_rate_limit_is_a_transient_451(port: Port) -> None:
    key = port.key()
    other = port.key("another app")
    with port.session(key) as client:
        for n in range(5):
            client.sendmail("app@example.com", ["ada@example.com"], submitted(f"n{n}"))
        with pytest.raises(smtplib.SMTPSenderRefused) as limited:
            client.sendmail("app@example.com", ["ada@example.com"], submitted("n5"))
        assert limited.value.smtp_code == 451
        assert b"4.7.1" in limited.value.smtp_error
    with port.session(other) as client:  # the limit is per key
        assert client.sendmail("app@example.com", ["ada@example.com"], submitted("other")) == {}
    assert len(port.rows()) == 6


def test_bad_messages_are_refused_and_missing_date_and_message_id_are_added(port: Port) -> None:
    key = port.key()
    with port.session(key) as client:
        for bad, why in (
            (submitted("Bare LF") + b"bare\nline\r\n", b"bare CR or LF"),
            (b"To: ada@example.com\r\nSubject: No From\r\n\r\nBody\r\n", b"no From"),
            (b"From: a@example.com\r\nNot a header\r\n\r\nBody\r\n", b"Header line 2"),
            (submitted("Twice", extra_headers="Subject: again\r\n"), b"more than one Subject"),
        ):
            code, reply = raw_transaction(client, bad)
            assert (code, why in reply) == (550, True), reply
        bare = b"From: App <app@example.com>\r\nTo: ada@example.com\r\nSubject: Bare\r\n\r\nHi\r\n"
        assert client.sendmail("app@example.com", ["ada@example.com"], bare) == {}
    (row,) = port.rows()
    _, data = split_received(bytes(row.data))
    assert data.endswith(bare)
    added = data[: -len(bare)].decode()
    assert added.startswith("Date: ")
    assert f"Message-ID: {row.message_id}\r\n" in added
    assert row.message_id.endswith("@example.com>")


def test_a_message_acknowledged_survives_a_sigkill_right_after_the_250(port: Port) -> None:
    key = port.key()
    client = port.session(key)
    client.mail("app@example.com")
    client.rcpt("ada@example.com")
    code, reply = client.data(submitted("Killed"))
    port.process.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    assert code == 250, reply
    port.process.kill()
    client.close()
    engine = create_outbox_engine(port.env["DATABASE_URL"])  # a new process's view
    try:
        with engine.connect() as connection:
            (row,) = connection.execute(select(messages.c.id, messages.c.subject))
    finally:
        engine.dispose()
    assert row.subject == "Killed"
    assert reply == f"2.0.0 OK queued as {row.id}".encode()


def test_sigterm_ends_it_within_a_bound_telling_open_connections_421(port: Port) -> None:
    key = port.key()
    idle = port.session(key)
    sending = port.session(key)
    sending.mail("app@example.com")
    sending.rcpt("ada@example.com")
    sending.putcmd("data")
    assert sending.getreply()[0] == 354
    sending.send(b"From: app@example.com\r\n\r\nhalf a message")  # no final dot
    started = time.monotonic()
    assert port.process.stop(timeout=STOP_WITHIN) == 0
    assert time.monotonic() - started < STOP_WITHIN
    assert idle.getreply()[0] == 421  # RFC 5321 3.8: the server is going away
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        idle.noop()
    with contextlib.suppress(OSError):  # the socket may be gone already, or not yet
        sending.send(b".\r\n")
    assert sending.getreply()[0] == 421  # the half message was refused, not acknowledged
    assert port.rows() == []  # half a message is never acknowledged, so never stored
    assert "mailroom smtpd: stopped" in port.process.output
    for client in (idle, sending):
        client.close()


def test_a_port_in_use_is_refused_in_one_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
        result = subprocess.run(
            [sys.executable, "-m", "mailroom", "smtpd", "--port", str(taken.getsockname()[1])],
            env=service_env({"DATABASE_URL": url}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        taken.close()
    assert result.returncode == 1
    assert result.stderr.startswith("mailroom: error: cannot listen on 127.0.0.1 port")
    assert "Traceback" not in result.stderr


def test_a_wrong_setting_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "smtpd", "--port", "0"],
        env=service_env(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
                "SMTPD_TRUSTED_NETWORKS": "10.0.0.0/8, not-a-network",
            }
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "SMTPD_TRUSTED_NETWORKS" in result.stderr
    assert "'not-a-network'" in result.stderr
    assert load_settings(environ={"SMTPD_TRUSTED_NETWORKS": "10.0.0.0/8"}).SMTPD_TRUSTED_NETWORKS
