"""The management commands (``mailroom_worker``, ``send_test_email``, ``mailroom_status``,
``mailroom_migrate``), the worker's events as Django signals, the separate-database mode, open
and click tracking, and the settings Mailroom reads from Django's."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage as StdMessage
from pathlib import Path
from typing import Any

import pytest

from mailroom.delivery.worker import WorkerStats
from mailroom.errors import SettingsError
from support.processes import Spawn
from support.smtp_server import SMTPTestServer

Deliver = Callable[[], WorkerStats]
TESTS = Path(__file__).resolve().parents[2]
MANAGE_PY = Path(__file__).resolve().parent / "django_project" / "manage.py"


@pytest.fixture
def relay(django_project: list[str], smtp_server: SMTPTestServer) -> Iterator[SMTPTestServer]:
    from django.test.utils import override_settings  # noqa: PLC0415

    with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": "default"}):
        yield smtp_server


def _command(name: str, *args: str) -> str:
    from django.core.management import call_command  # noqa: PLC0415

    out = io.StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def test_the_worker_command_delivers_and_sends_signals(relay: SMTPTestServer) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415

    from mailroom.integrations.django import signals  # noqa: PLC0415

    seen: list[tuple[str, dict[str, Any]]] = []

    def on_sent(sender: object, **kwargs: Any) -> None:
        seen.append(("sent", kwargs))

    def on_failed(sender: object, **kwargs: Any) -> None:
        seen.append(("failed", kwargs))

    relay.handler.rcpt_replies["refused@example.com"] = "550 5.1.1 no such user"
    signals.sent.connect(on_sent)
    signals.failed.connect(on_failed)
    try:
        send_mail("Signals", "b", None, ["ok@example.com"])
        send_mail("Refused", "b", None, ["refused@example.com"])
        output = _command("mailroom_worker", "--once")
    finally:
        signals.sent.disconnect(on_sent)
        signals.failed.disconnect(on_failed)
    assert "sent 1" in output
    assert "failed 1" in output
    assert sorted((kind, event["recipient"]) for kind, event in seen) == [
        ("failed", "refused@example.com"),
        ("sent", "ok@example.com"),
    ]
    assert all(isinstance(event["message_pk"], int) for _, event in seen)


def test_django_migrate_made_the_outbox_tables(django_project: list[str]) -> None:
    """``migrate`` ran the Alembic chain in each alias's database (the session fixture); the
    command finds nothing left to do."""
    from django.test.utils import override_settings  # noqa: PLC0415

    for alias in django_project:
        with override_settings(MAILROOM={"DATABASE": alias}):
            assert "nothing to do" in _command("mailroom_migrate")


def test_send_test_email_and_status(relay: SMTPTestServer) -> None:
    output = _command("send_test_email", "check@example.com")
    assert "[1/2] from DEFAULT_FROM_EMAIL" in output
    assert "Both test messages were accepted" in output
    assert len(relay.handler.received) == 2
    assert all(r.rcpt_tos == ["check@example.com"] for r in relay.handler.received)
    state = json.loads(_command("mailroom_status", "--json"))
    assert state["counts"]["sent"] >= 2
    assert _command("mailroom_status").startswith("messages: ")


def test_the_separate_database_mode_waits_for_the_commit(
    django_project: list[str], smtp_server: SMTPTestServer, deliver: Deliver, tmp_path: Path
) -> None:
    from django.core.mail import EmailMessage  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    url = f"sqlite:///{tmp_path / 'separate.db'}"
    with override_settings(
        EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": "default", "DATABASE_URL": url}
    ):
        assert "from revision (none) to " in _command("mailroom_migrate")
        assert "nothing to do" in _command("mailroom_migrate")
        try:
            with transaction.atomic():
                EmailMessage("rolled back", "b", to=["a@example.com"]).send()
                raise RuntimeError
        except RuntimeError:
            pass
        with transaction.atomic():
            message = EmailMessage("committed", "b", to=["a@example.com"])
            assert message.send() == 1
            assert message.mailroom_status is None  # type: ignore[attr-defined]
        assert isinstance(message.mailroom_status, int)  # type: ignore[attr-defined]
        assert deliver().sent == 1
    [received] = smtp_server.handler.received
    assert b"Subject: committed" in received.data


def test_tracking_asked_per_message(relay: SMTPTestServer, deliver: Deliver) -> None:
    from django.core.mail import EmailMultiAlternatives  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    tracked = {
        "DATABASE": "default",
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "SECRET_KEY": "k" * 40,
    }
    with override_settings(MAILROOM=tracked):
        message = EmailMultiAlternatives("Tracked", "text", to=["t@example.com"])
        message.attach_alternative('<p><a href="https://shop.example.com/x">x</a></p>', "text/html")
        message.track_opens = True  # type: ignore[attr-defined]
        message.track_clicks = True  # type: ignore[attr-defined]
        plain = EmailMultiAlternatives("Untracked", "text", to=["t@example.com"])
        plain.attach_alternative('<p><a href="https://shop.example.com/x">x</a></p>', "text/html")
        assert message.send() == 1
        assert plain.send() == 1
        assert str(message.alternatives[0][0]).startswith("<p><a href")  # unchanged
        assert "Message-ID" not in message.extra_headers
        assert deliver().sent == 2
    html = {}
    for received in relay.handler.received:
        sent = message_from_bytes(received.data, policy=policy.default)
        assert isinstance(sent, StdMessage)
        body = sent.get_body(("html",))
        assert body is not None
        html[str(sent["Subject"])] = body.get_content()
    assert "https://mail.example.com/" in html["Tracked"]
    assert 'href="https://shop.example.com/x"' not in html["Tracked"]
    assert "https://mail.example.com/" not in html["Untracked"]


def test_settings_come_from_django(django_project: list[str]) -> None:
    from django.test.utils import override_settings  # noqa: PLC0415

    from mailroom.integrations.django.settings import mailroom_settings  # noqa: PLC0415

    with override_settings(
        EMAIL_HOST="relay.example.com",
        EMAIL_PORT=2525,
        EMAIL_HOST_USER="user",
        EMAIL_HOST_PASSWORD="hunter2-secret",
        EMAIL_USE_TLS=True,
        EMAIL_TIMEOUT=7,
        MAILROOM={"DATABASE": "default", "WORKER_CONCURRENCY": 3},
    ):
        config = mailroom_settings()
    settings = config.settings
    assert (settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT) == (
        "relay.example.com",
        2525,
        7,
    )
    assert settings.EMAIL_USE_TLS
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(settings)
    assert settings.ADMINS == ('"Ada Admin" <ada@example.com>', '"Bob" <bob@example.com>')
    assert settings.SERVER_EMAIL == "errors@example.com"
    assert settings.WORKER_CONCURRENCY == 3
    assert config.settings.DATABASE_URL.startswith("sqlite:///")
    assert config.shared
    with (
        override_settings(MAILROOM={"DATABASE": "nowhere"}),
        pytest.raises(SettingsError, match=r"MAILROOM.*nowhere"),
    ):
        mailroom_settings()
    with (
        override_settings(MAILROOM={"WORKER_CONCURRENCY": "many"}),
        pytest.raises(SettingsError, match="WORKER_CONCURRENCY"),
    ):
        mailroom_settings()


def test_manage_py_mailroom_worker_runs_and_stops_on_sigterm(
    relay: SMTPTestServer, spawn: Spawn
) -> None:
    """A real ``manage.py mailroom_worker`` process: it delivers what the application
    commits, and SIGTERM ends it in bounded time with exit status 0."""
    from django.core.mail import send_mail  # noqa: PLC0415

    env = {
        **os.environ,
        # The tests' own PYTHONPATH kept: the process runs the Mailroom under test (a
        # worktree's src), not whichever the environment has installed.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p
        ),
        "DJANGO_PROJECT_EMAIL_PORT": str(relay.port),
        "DJANGO_SETTINGS_MODULE": "integration.integrations.django_project.settings",
    }
    worker = spawn([sys.executable, str(MANAGE_PY), "mailroom_worker", "--concurrency", "2"], env)
    send_mail("From the app", "b", None, ["app@example.com"])
    deadline = time.monotonic() + 30
    while not relay.handler.received and time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()
        time.sleep(0.1)
    assert [r.rcpt_tos for r in relay.handler.received] == [["app@example.com"]]
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    assert b"sent 1" in out
