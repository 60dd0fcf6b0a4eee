"""``mailroom send-test-email`` and ``mailroom config show`` against a real SMTP server.

Each diagnosis comes from creating the situation for real: a closed port, TLS against a plain
server, a wrong password, a refused sender, a refused recipient.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from mailroom.cli import main
from mailroom.config import SETTING_NAMES
from mailroom.outbox import database
from mailroom.outbox.capture_queries import get_captured, list_captured
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import attempts, events, messages, streams
from support.smtp_server import TEST_PASSWORD, TEST_USER, ServerFactory, SMTPTestServer
from support.tls_files import TLSFiles


def write_settings(
    tmp_path: Path,
    port: int,
    *,
    extra: str = "",
    password: str | None = None,
    database_url: str | None = None,
) -> Path:
    """A settings file and, when a password is given, a secrets file beside it. The test
    email is recorded in the outbox: by default a migrated file of its own, not one in the
    working folder."""
    lines = [
        'EMAIL_HOST = "127.0.0.1"',
        f"EMAIL_PORT = {port}",
        'DEFAULT_FROM_EMAIL = "App <app@example.com>"',
        'NOREPLY_EMAIL_ADDRESS = "noreply@example.com"',
        "EMAIL_TIMEOUT = 5",
        f'DATABASE_URL = "{database_url or sqlite_url(tmp_path)}"',
        extra,
    ]
    if password is not None:
        secrets = tmp_path / "mailroom-secrets.conf"
        secrets.write_text(f"email_password = {password}\n")
        lines += [f'EMAIL_HOST_USER = "{TEST_USER}"', f'SECRETS_FILE = "{secrets}"']
    if database_url is None:
        # An outbox the test email is recorded in (it makes none outside the capture mode).
        engine = create_outbox_engine(sqlite_url(tmp_path))
        try:
            database.upgrade(engine)
        finally:
            engine.dispose()
    path = tmp_path / "mailroom.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    # None unsets: no setting from the developer's shell leaks into the test.
    clean: dict[str, str | None] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    result = CliRunner().invoke(
        main, list(args), env={**clean, **(env or {})}, catch_exceptions=False
    )
    assert TEST_PASSWORD not in result.output
    return result


def test_delivers_both_messages(smtp_server: SMTPTestServer, tmp_path: Path) -> None:
    config = write_settings(tmp_path, smtp_server.port)
    result = run("send-test-email", "--config", str(config), "ops@example.com")

    assert result.exit_code == 0, result.output
    received = smtp_server.scripted.received
    assert [r.mail_from for r in received] == ["app@example.com", "noreply@example.com"]
    assert all(r.rcpt_tos == ["ops@example.com"] for r in received)
    subjects = [
        email.message_from_bytes(r.data, policy=email.policy.default)["Subject"] for r in received
    ]
    assert "DEFAULT_FROM_EMAIL" in subjects[0]
    assert "NOREPLY_EMAIL_ADDRESS" in subjects[1]
    assert result.output.count("delivered to 127.0.0.1") == 2
    assert smtp_server.scripted.connections == 1
    # Both are in the outbox (stream "test"), sent, each with its attempt and the relay's 250.
    recorded = recorded_messages(tmp_path)
    assert [(m.subject, m.status, m.stream) for m in recorded] == [
        (subjects[0], "sent", "test"),
        (subjects[1], "sent", "test"),
    ]
    for message, got in zip(recorded, received, strict=True):
        assert message.attempts == [("ops@example.com", "sent", 250)]
        assert message.events == ["queued", "sent"]
        assert f"recorded as message {message.pk} (stream test)" in result.output
        assert got.data.replace(b"\r\n", b"\n") == message.data.replace(b"\r\n", b"\n")


def test_with_starttls_and_auth_reading_the_secrets_file(
    smtp_server_factory: ServerFactory, tls: TLSFiles, tmp_path: Path
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    config = write_settings(
        tmp_path,
        server.port,
        password=TEST_PASSWORD,
        extra=f'EMAIL_USE_TLS = true\nEMAIL_SSL_CAFILE = "{tls.ca_path}"',
    )
    result = run("--config", str(config), "send-test-email", "ops@example.com")
    assert result.exit_code == 0, result.output
    assert len(server.scripted.received) == 2


def test_closed_port(unused_tcp_port: int, tmp_path: Path) -> None:
    config = write_settings(tmp_path, unused_tcp_port)
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "refused the connection" in result.output
    assert "Check EMAIL_HOST and EMAIL_PORT" in result.output
    assert "firewall" in result.output
    assert "not trying the second message" in result.output


def test_tls_against_a_plain_server(
    smtp_server: SMTPTestServer, tls: TLSFiles, tmp_path: Path
) -> None:
    config = write_settings(
        tmp_path,
        smtp_server.port,
        extra=f'EMAIL_USE_SSL = true\nEMAIL_SSL_CAFILE = "{tls.ca_path}"',
    )
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "TLS/SSL mismatch" in result.output
    assert "EMAIL_USE_TLS = true and EMAIL_USE_SSL = false" in result.output
    assert smtp_server.scripted.received == []


def test_wrong_password(smtp_server_factory: ServerFactory, tls: TLSFiles, tmp_path: Path) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    wrong = "not-the-" + TEST_PASSWORD[::-1]
    config = write_settings(
        tmp_path,
        server.port,
        password=wrong,
        extra=f'EMAIL_USE_TLS = true\nEMAIL_SSL_CAFILE = "{tls.ca_path}"',
    )
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "535" in result.output
    assert f"refused the login of {TEST_USER}" in result.output
    assert "secrets file" in result.output
    assert wrong not in result.output
    assert server.scripted.received == []
    # Recorded as failed at once, the relay's reply kept: a test is never retried, and a
    # failed test pauses no stream.
    (recorded,) = recorded_messages(tmp_path)
    assert (recorded.status, recorded.last_code) == ("failed", 535)
    assert recorded.attempts == [("ops@example.com", "failed", 535)]
    assert recorded.events == ["queued", "failed"]
    assert recorded.paused_streams == []


def test_credentials_against_a_relay_offering_auth_only_after_starttls(
    smtp_server_factory: ServerFactory, tmp_path: Path
) -> None:
    # AUTH is offered only once TLS is on (aiosmtpd's auth_require_tls): no login is tried.
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    config = write_settings(tmp_path, server.port, password=TEST_PASSWORD)
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "does not offer AUTH" in result.output
    assert "was never tried" in result.output
    assert "Turn on EMAIL_USE_TLS" in result.output
    assert "refused the login" not in result.output
    assert "not trying the second message" in result.output
    assert server.scripted.auth_mechanisms_used == []
    assert server.scripted.received == []


def test_sender_refused(smtp_server: SMTPTestServer, tmp_path: Path) -> None:
    smtp_server.scripted.replies["MAIL"] = "553 5.7.1 sender address not owned by user"
    config = write_settings(tmp_path, smtp_server.port)
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "does not allow sending from this From address" in result.output
    # Both senders were tried, and each diagnosis names the setting to change.
    assert "set DEFAULT_FROM_EMAIL to an address the relay accepts" in result.output
    assert "set NOREPLY_EMAIL_ADDRESS to an address the relay accepts" in result.output


def test_only_the_noreply_sender_refused(smtp_server: SMTPTestServer, tmp_path: Path) -> None:
    config = write_settings(tmp_path, smtp_server.port)
    smtp_server.scripted.sender_replies["noreply@example.com"] = "550 5.7.1 not your address"
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert result.output.count("delivered to") == 1
    assert "NOREPLY_EMAIL_ADDRESS to an address the relay accepts" in result.output


def test_recipient_refused(smtp_server: SMTPTestServer, tmp_path: Path) -> None:
    smtp_server.scripted.rcpt_replies["nobody@example.com"] = "550 5.1.1 no such user here"
    config = write_settings(tmp_path, smtp_server.port)
    result = run("send-test-email", "--config", str(config), "nobody@example.com")
    assert result.exit_code == 1
    assert "refused the recipient nobody@example.com" in result.output
    assert "550 5.1.1 no such user here" in result.output
    recorded = recorded_messages(tmp_path)
    assert [(m.status, m.last_code, m.attempts) for m in recorded] == [
        ("failed", 550, [("nobody@example.com", "failed", 550)])
    ] * 2


def test_a_recipient_refused_for_now_is_not_tried_again(
    smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    # A worker would carry this recipient to a follow-up row; a test email is tried once.
    smtp_server.scripted.rcpt_replies["busy@example.com"] = "450 4.2.1 mailbox busy"
    config = write_settings(tmp_path, smtp_server.port)
    result = run("send-test-email", "--config", str(config), "ops@example.com", "busy@example.com")
    assert result.exit_code == 1
    assert "refused for busy@example.com" in result.output
    recorded = recorded_messages(tmp_path)
    assert len(recorded) == 2  # no follow-up rows
    for message in recorded:
        assert message.status == "sent"
        assert sorted(message.attempts) == [
            ("busy@example.com", "refused", 450),
            ("ops@example.com", "sent", 250),
        ]


def test_a_database_that_cannot_be_reached_does_not_stop_the_test(
    smtp_server: SMTPTestServer, tmp_path: Path, unused_tcp_port: int
) -> None:
    # The relay is what is tested: both messages go out, unrecorded, and the output says so.
    url = f"postgresql://mailroom@127.0.0.1:{unused_tcp_port}/mailroom?connect_timeout=2"
    config = write_settings(tmp_path, smtp_server.port, database_url=url)
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 0, result.output
    assert len(smtp_server.scripted.received) == 2
    assert "Not recorded in the outbox (the database: " in result.output
    assert "DATABASE_URL" in result.output
    assert "recorded as message" not in result.output


def test_port_465_with_starttls_is_refused_before_connecting(tmp_path: Path) -> None:
    config = write_settings(tmp_path, 465, extra="EMAIL_USE_TLS = true")
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert "EMAIL_USE_SSL = true" in result.output


def test_console_transport_prints_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no mailroom.toml here
    result = run("send-test-email", "ada@example.com", env={"MAILROOM_TRANSPORT": "console"})
    assert result.exit_code == 0
    assert "Transport: console" in result.output
    assert "RCPT TO: ada@example.com" in result.output
    assert result.output.count("delivered to standard output") == 2


def test_config_show_masks_the_password_and_names_sources(tmp_path: Path) -> None:
    config = write_settings(tmp_path, 2525, password=TEST_PASSWORD)
    result = run("config", "show", "--config", str(config), env={"EMAIL_TIMEOUT": "12"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "********" in rows["EMAIL_HOST_PASSWORD"]
    assert "secrets file" in rows["EMAIL_HOST_PASSWORD"]
    assert str(config) in rows["EMAIL_PORT"]
    assert rows["EMAIL_TIMEOUT"].split()[1:] == ["12.0", "environment"]
    assert rows["EMAIL_BACKEND"].split()[1] == "smtp"


def test_config_show_json_and_password_in_settings_file_warning(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text(f'EMAIL_URL = "smtp://{TEST_USER}:{TEST_PASSWORD}@relay.example.com:587"\n')
    result = run("config", "show", "--json", "--config", str(config))
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["settings"]["EMAIL_HOST_PASSWORD"] == {
        "value": "********",
        "source": f"EMAIL_URL in {config}",
    }
    assert shown["settings"]["EMAIL_HOST"]["value"] == "relay.example.com"
    [warning] = shown["warnings"]
    assert "move it to the secrets file" in warning


def test_config_show_masks_the_secret_key(tmp_path: Path) -> None:
    secret = "a-signing-key-that-must-stay-hidden-0123456789"
    result = run(
        "config",
        "show",
        "--json",
        env={"SECRET_KEY": secret, "ADMINS": "Ada <ada@example.com>, ops@example.com"},
    )
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    shown = json.loads(result.stdout)["settings"]
    assert shown["SECRET_KEY"] == {"value": "********", "source": "environment"}
    assert shown["ADMINS"]["value"] == "Ada <ada@example.com>, ops@example.com"


def test_unknown_setting_names_it_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text('EMAIL_HOTS = "relay.example.com"\n')
    result = run("config", "show", "--config", str(config))
    assert result.exit_code == 1
    assert "EMAIL_HOTS" in result.output
    assert "did you mean EMAIL_HOST" in result.output


def test_installed_command_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "mailroom", "--help"], capture_output=True, text=True, check=True
    )
    assert "send-test-email" in completed.stdout


def test_the_console_transport_says_nothing_left_the_machine(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "send-test-email", "ops@example.com"],
        env={**_no_settings(), "MAILROOM_TRANSPORT": "console"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Subject: Mailroom test email 1 of 2" in result.stdout  # printed, not sent
    assert "Check the inbox" not in result.stdout
    assert "EMAIL_BACKEND is console" in result.stdout
    assert "nothing left this machine" in result.stdout
    assert "set EMAIL_HOST" in result.stdout


@dataclass(frozen=True)
class Recorded:
    pk: int
    subject: str
    status: str
    stream: str
    last_code: int | None
    last_error: str | None
    server_texts: list[str | None]
    data: bytes
    attempts: list[tuple[str, str, int | None]]
    events: list[str]
    paused_streams: list[str]


def recorded_messages(tmp_path: Path) -> list[Recorded]:
    """The messages the test email recorded in ``tmp_path``'s outbox, oldest first."""
    engine = create_outbox_engine(sqlite_url(tmp_path), must_exist=True)
    try:
        with engine.connect() as connection:
            paused = [row.name for row in connection.execute(select(streams.c.name))]
            found = []
            for row in connection.execute(select(messages).order_by(messages.c.id)):
                tried = connection.execute(
                    select(
                        attempts.c.recipient,
                        attempts.c.outcome,
                        attempts.c.code,
                        attempts.c.server_text,
                    )
                    .where(attempts.c.message_pk == row.id)
                    .order_by(attempts.c.id)
                ).all()
                happened = connection.execute(
                    select(events.c.type).where(events.c.message_pk == row.id).order_by(events.c.id)
                )
                found.append(
                    Recorded(
                        row.id,
                        row.subject,
                        row.status,
                        row.stream,
                        row.last_code,
                        row.last_error,
                        [a.server_text for a in tried],
                        row.data,
                        [(a.recipient, a.outcome, a.code) for a in tried],
                        [e.type for e in happened],
                        paused,
                    )
                )
            return found
    finally:
        engine.dispose()


def _no_settings() -> dict[str, str]:
    names = (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    return {k: v for k, v in os.environ.items() if k not in names}


def test_an_outbox_file_that_is_not_there_is_not_created(
    smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    # Run in the wrong folder: the relay is tested, and no new outbox is left behind.
    missing = tmp_path / "elsewhere" / "mailroom.db"
    config = write_settings(tmp_path, smtp_server.port, database_url=f"sqlite:///{missing}")
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 0, result.output
    assert len(smtp_server.scripted.received) == 2
    assert "Not recorded in the outbox (the database: " in result.output
    assert not missing.exists()


def test_a_failure_that_is_no_relay_reply_is_recorded_as_the_failure(tmp_path: Path) -> None:
    # A CA file that is not there fails before any SMTP: a failure all the same, recorded and
    # final, not a message left leased for a worker to send later.
    config = write_settings(
        tmp_path,
        465,
        extra=f'EMAIL_USE_SSL = true\nEMAIL_SSL_CAFILE = "{tmp_path / "no-such-ca.pem"}"',
    )
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    recorded = recorded_messages(tmp_path)
    assert recorded, result.output
    for message in recorded:
        assert message.status == "failed"
        assert message.events == ["queued", "failed"]


def test_a_login_the_relay_echoes_is_not_stored(
    smtp_server_factory: ServerFactory, tls: TLSFiles, tmp_path: Path
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    server.scripted.replies["MAIL"] = f"553 5.7.1 {TEST_USER} may not send as this address"
    config = write_settings(
        tmp_path,
        server.port,
        password=TEST_PASSWORD,
        extra=f'EMAIL_USE_TLS = true\nEMAIL_SSL_CAFILE = "{tls.ca_path}"',
    )
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 1
    assert TEST_USER in result.output  # the shell is the operator's own
    recorded = recorded_messages(tmp_path)
    assert recorded
    for message in recorded:
        # The outbox is shown on pages: the relay's words are kept, the login is not.
        assert message.status == "failed"
        assert message.last_error is not None
        assert TEST_USER not in message.last_error
        assert "(EMAIL_HOST_USER) may not send" in message.last_error
        assert all(TEST_USER not in (text or "") for text in message.server_texts)


def test_a_database_without_the_outbox_tables_does_not_stop_the_test(
    smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    # An application's database, not migrated for Mailroom: Mailroom creates no tables in it.
    app_database = tmp_path / "app.db"
    with sqlite3.connect(app_database) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    config = write_settings(tmp_path, smtp_server.port, database_url=f"sqlite:///{app_database}")
    result = run("send-test-email", "--config", str(config), "ops@example.com")
    assert result.exit_code == 0, result.output
    assert len(smtp_server.scripted.received) == 2
    assert "Not recorded in the outbox (the database: " in result.output
    assert "mailroom db upgrade" in result.output
    with sqlite3.connect(app_database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    assert tables == ["orders"]


def test_with_no_settings_both_messages_are_captured_in_the_outbox(tmp_path: Path) -> None:
    # A first run: no settings at all, so the capture transport stores the messages in the
    # outbox database (a new SQLite file here), where `mailroom serve` shows them.
    result = subprocess.run(
        [sys.executable, "-m", "mailroom", "send-test-email", "ops@example.com"],
        env=_no_settings(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    database = tmp_path / "mailroom.db"
    assert "Transport: capture" in result.stdout
    stored = f"were stored as captured mail in the outbox database sqlite:///{database}, "
    assert stored in result.stdout
    assert "EMAIL_BACKEND is capture" in result.stdout
    assert "nothing left this machine" in result.stdout
    assert "Check the inbox" not in result.stdout
    engine = create_outbox_engine(f"sqlite:///{database}", must_exist=True)
    try:
        with engine.connect() as connection:
            listed = list_captured(connection)
            shown = [get_captured(connection, summary.id) for summary in listed]
    finally:
        engine.dispose()
    assert [c.subject for c in listed] == [
        "Mailroom test email 2 of 2 (from NOREPLY_EMAIL_ADDRESS)",
        "Mailroom test email 1 of 2 (from DEFAULT_FROM_EMAIL)",
    ]
    for summary, message in zip(listed, shown, strict=True):
        assert message is not None
        assert summary.recipients == ("ops@example.com",)
        # Recorded in the outbox, and the captured copy names its message.
        assert summary.message_pk is not None
        assert f"recorded as message {summary.message_pk} (stream test)" in result.stdout
        assert f"delivered to captured #{summary.id}: {summary.message_id}" in result.stdout
        assert b"\r\nSubject: Mailroom test email" in message.data
        assert summary.size == len(message.data)
