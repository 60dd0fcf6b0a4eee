"""The status page against a real ``mailroom serve``, signed in over HTTP as a browser would:
the transport card (capture, and SMTP without its login), the figures from the database, and
the test email form (refused without its CSRF token; captured with it).

Every answer is checked by the service's secret watch (tests/support/api_client.py): no
password, and here no SMTP user name either, in any page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from mailroom.config import load_settings
from mailroom.outbox.capture_queries import list_captured
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.operator_queries import attempts_for, message_detail
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, Status
from support.service import ServiceProcess

ADMIN_PASSWORD = "status-page-admin-password-4711"
SMTP_USER = "status-login-name-8e2c"
SMTP_PASSWORD = "status-smtp-password-51d0"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def _signed_in(service: ServiceProcess) -> Iterator[httpx.Client]:
    """A client holding an admin session (the login form's CSRF token from its page)."""
    with service.client() as client:
        page = client.get("/admin/login")
        assert page.status_code == 200
        answer = client.post(
            "/admin/login",
            data={
                "username": "admin",
                "password": ADMIN_PASSWORD,
                "csrf_token": _csrf(page.text),
                "next": "",
            },
        )
        assert answer.status_code == 303, answer.text
        yield client


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


@pytest.fixture(scope="module")
def database_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("status") / "outbox.db"


@pytest.fixture(scope="module")
def capturing(database_file: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        {
            "DATABASE_URL": f"sqlite:///{database_file}",
            "MAILROOM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DEFAULT_FROM_EMAIL": "App <app@example.com>",
        }
    ).start()
    try:
        yield service
    finally:
        service.stop()
        service.check_output()


def test_the_page_needs_a_session(capturing: ServiceProcess) -> None:
    answer = capturing.get("/admin/")

    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login")


def test_the_bare_prefix_leads_to_the_page(capturing: ServiceProcess) -> None:
    with _signed_in(capturing) as client:
        answer = client.get("/admin")

    assert answer.status_code == 308
    assert answer.headers["location"] == "/admin/"


def test_capture_mode_and_the_empty_states(capturing: ServiceProcess) -> None:
    with _signed_in(capturing) as client:
        page = client.get("/admin/")

    assert page.status_code == 200
    assert "Capturing — nothing leaves this machine" in page.text
    assert "App &lt;app@example.com&gt;" in page.text  # From, escaped
    assert "noreply@example.com" in page.text
    assert '<svg class="hourly-chart"' in page.text
    assert "No stream is paused." in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_the_test_email_without_its_csrf_token_is_refused(
    capturing: ServiceProcess, database_file: Path
) -> None:
    with _signed_in(capturing) as client:
        answer = client.post("/admin/test-email", data={"address": "nocsrf@example.com"})

    assert answer.status_code == 403
    assert _captured_for(database_file, "nocsrf@example.com") == []


def test_the_test_email_is_captured_and_reported(
    capturing: ServiceProcess, database_file: Path
) -> None:
    with _signed_in(capturing) as client:
        token = _csrf(client.get("/admin/").text)
        answer = client.post(
            "/admin/test-email", data={"address": "ops@example.com", "csrf_token": token}
        )

    assert answer.status_code == 200
    assert "Test email sent" in answer.text
    assert "[1/2] from DEFAULT_FROM_EMAIL" in answer.text
    assert "stored as captured mail" in answer.text
    assert sorted(_captured_for(database_file, "ops@example.com")) == [
        "Mailroom test email 1 of 2 (from DEFAULT_FROM_EMAIL)",
        "Mailroom test email 2 of 2 (from NOREPLY_EMAIL_ADDRESS)",
    ]
    # Both are in the outbox too, sent, and the report links to them.
    linked = [int(pk) for pk in re.findall(r'href="/admin/messages/(\d+)">message #', answer.text)]
    assert len(linked) == 2
    engine = create_outbox_engine(f"sqlite:///{database_file}")
    try:
        with engine.connect() as connection:
            for pk in linked:
                detail = message_detail(connection, pk)
                assert detail is not None
                assert (detail.status, detail.stream) == (Status.SENT, "test")
                tried = attempts_for(connection, pk)
                assert [(a.recipient, a.outcome) for a in tried] == [("ops@example.com", "sent")]
    finally:
        engine.dispose()


def test_a_test_email_to_no_address_says_what_is_wrong(capturing: ServiceProcess) -> None:
    with _signed_in(capturing) as client:
        token = _csrf(client.get("/admin/").text)
        answer = client.post(
            "/admin/test-email", data={"address": "not an address", "csrf_token": token}
        )

    assert answer.status_code == 422
    assert "Not one email address" in answer.text
    assert 'aria-invalid="true"' in answer.text


_FIGURES = re.compile(r": (\d+) sent, (\d+) deferred, (\d+) failed</title>")


def _figures(page: str) -> tuple[int, int, int]:
    """The last 24 hours' sent, deferred and failed: the sums of the chart's hourly bars."""
    bars = [tuple(int(n) for n in match) for match in _FIGURES.findall(page)]
    assert len(bars) == 24, "not one bar an hour in the chart"
    sent, deferred, failed = (sum(column) for column in zip(*bars, strict=True))
    return sent, deferred, failed


def test_the_figures_come_from_the_database(capturing: ServiceProcess, database_file: Path) -> None:
    # What the module's other tests sent (the test email) is counted too: only the change
    # these events make is asserted.
    with _signed_in(capturing) as client:
        before = _figures(client.get("/admin/").text)
    outbox = Outbox(load_settings(environ={"DATABASE_URL": f"sqlite:///{database_file}"}))
    try:
        # Scheduled for tomorrow: the service's worker must not send it (its own "sent"
        # event would change the figures asserted).
        message_pk = outbox.send(
            to=["gone@example.com"],
            subject="Hi",
            text="hi",
            send_at=datetime.now(UTC) + timedelta(days=1),
        )
        now = time.time()
        with outbox.engine.begin() as connection:
            # Both at one instant: in one hour's bar even when an hour turns meanwhile.
            record_events(
                connection,
                [
                    EventRecord(message_pk, "gone@example.com", EventType.SENT, now - 20),
                    EventRecord(
                        message_pk,
                        "gone@example.com",
                        EventType.FAILED,
                        now - 20,
                        detail={
                            "code": 550,
                            "enhanced_status": "5.1.1",
                            "server_text": "no such user <b>",
                        },
                    ),
                ],
            )
    finally:
        outbox.dispose()

    with _signed_in(capturing) as client:
        page = client.get("/admin/").text

    assert "550 5.1.1 no such user &lt;b&gt;" in page  # the relay's words, escaped
    assert f'/admin/messages/{message_pk}"' in page
    sent, deferred, failed = before
    assert _figures(page) == (sent + 1, deferred, failed + 1)
    assert "No errors." not in page


def _captured_for(database_file: Path, recipient: str) -> list[str]:
    engine = create_outbox_engine(f"sqlite:///{database_file}")
    try:
        with engine.connect() as connection:
            found = list_captured(connection, limit=100)
    finally:
        engine.dispose()
    return [mail.subject for mail in found if recipient in mail.recipients]


def test_smtp_shows_host_and_port_never_the_login(tmp_path: Path, unused_tcp_port: int) -> None:
    service = ServiceProcess(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
            "MAILROOM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(unused_tcp_port),
            "EMAIL_HOST_USER": SMTP_USER,
            "EMAIL_HOST_PASSWORD": SMTP_PASSWORD,
            "EMAIL_USE_TLS": "true",
            "EMAIL_TIMEOUT": "5",
        }
    )
    service.watch.add(SMTP_USER)  # every answer is checked for it, as for the password
    service.start()
    try:
        with _signed_in(service) as client:
            page = client.get("/admin/")
            token = _csrf(page.text)
            # Nothing listens on the port: the report diagnoses it, still without the login.
            report = client.post(
                "/admin/test-email", data={"address": "ops@example.com", "csrf_token": token}
            )
            # The failed message is recorded, and its page shows the failure, not the login.
            (failed_pk,) = re.findall(r'href="/admin/messages/(\d+)">message #', report.text)
            failed = client.get(f"/admin/messages/{failed_pk}")
    finally:
        service.stop()
    service.check_output()

    assert page.status_code == 200
    assert f"Relaying through 127.0.0.1:{unused_tcp_port}" in page.text
    assert f'<dd class="mono">{unused_tcp_port}</dd>' in page.text
    assert "STARTTLS (EMAIL_USE_TLS)" in page.text
    assert report.status_code == 200
    assert "The test email did not go through" in report.text
    assert "FAILED" in report.text
    assert failed.status_code == 200
    assert "refused the connection" in failed.text
    for text in (page.text, report.text, failed.text):
        assert SMTP_USER not in text
        assert SMTP_PASSWORD not in text
