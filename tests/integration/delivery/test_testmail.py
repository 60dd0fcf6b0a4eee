"""The test email as the admin status page runs it (``run_test_email``): against the capture
transport and a real SMTP server that refuses the login, whose name the report must not show.
"""

from __future__ import annotations

from pathlib import Path

from mailroom.config import load_settings
from mailroom.delivery.testmail import run_test_email
from mailroom.outbox.capture_queries import list_captured
from mailroom.outbox.database import create_outbox_engine
from support.smtp_server import TEST_PASSWORD, TEST_USER, ServerFactory
from support.tls_files import TLSFiles


def test_capture_keeps_both_messages_and_says_where(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    settings = load_settings(
        environ={"DATABASE_URL": url, "DEFAULT_FROM_EMAIL": "App <app@example.com>"}
    )

    report = run_test_email(settings, ("ops@example.com",))

    assert report.ok
    assert report.lines[0].startswith("Transport: capture")
    assert report.lines[1] == (
        "[1/2] from DEFAULT_FROM_EMAIL <App <app@example.com>> to ops@example.com ..."
    )
    assert report.advice is not None
    assert "stored as captured mail" in report.advice
    engine = create_outbox_engine(url)
    try:
        with engine.connect() as connection:
            captured = list_captured(connection, limit=10)
    finally:
        engine.dispose()
    assert sorted(mail.subject for mail in captured) == [
        "Mailroom test email 1 of 2 (from DEFAULT_FROM_EMAIL)",
        "Mailroom test email 2 of 2 (from NOREPLY_EMAIL_ADDRESS)",
    ]


def test_a_refused_login_is_diagnosed_without_naming_the_login(
    smtp_server_factory: ServerFactory, tls: TLSFiles, tmp_path: Path
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    settings = load_settings(
        environ={
            "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_USE_TLS": "true",
            "EMAIL_SSL_CAFILE": str(tls.ca_path),
            "EMAIL_HOST_USER": TEST_USER,
            "EMAIL_HOST_PASSWORD": "wrong-" + TEST_PASSWORD,
            "EMAIL_TIMEOUT": "5",
        }
    )

    report = run_test_email(settings, ("ops@example.com",))

    assert not report.ok
    assert report.advice is None
    shown = "\n".join(report.lines)
    assert "535" in shown
    assert "refused the login of (EMAIL_HOST_USER)" in shown
    assert "not trying the second message" in shown
    assert TEST_USER not in shown
    assert TEST_PASSWORD not in shown
    assert server.scripted.received == []
