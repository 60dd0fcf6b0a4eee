"""The Django integration's answers to its review: Django's test runner on SQLite, a
PostgreSQL socket directory, a tracked message retried under its idempotency key, a failing
``queued`` receiver, a broken transaction, the separate mode's failure after the commit,
Django's defaults that are not Mailroom's, header names, the commands' errors and the SQLite
system check."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text

from mailroom.delivery.worker import WorkerStats
from mailroom.errors import HeaderInjectionError
from mailroom.outbox.database import create_outbox_engine
from support.smtp_server import SMTPTestServer

Deliver = Callable[[], WorkerStats]
TESTS = Path(__file__).resolve().parents[2]
MANAGE_PY = Path(__file__).resolve().parent / "django_project" / "manage.py"
SOCKET_DIR = "/var/run/postgresql"


def _manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``manage.py`` of the test project in a process of its own (its own settings)."""
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_PROJECT_")},
            # The tests' own PYTHONPATH kept: the process runs the Mailroom under test (a
            # worktree's src), not whichever the environment has installed.
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p
            ),
            "DJANGO_SETTINGS_MODULE": "integration.integrations.django_project.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def mail_to(
    django_project: list[str], alias: str, smtp_server: SMTPTestServer, deliver: Deliver
) -> Iterator[str]:
    """The alias the outbox shares for the test; what the test queued is delivered after it,
    so the session's outbox holds nothing of it for the next test."""
    from django.test.utils import override_settings  # noqa: PLC0415

    with override_settings(
        EMAIL_PORT=smtp_server.port,
        MAILROOM={
            "DATABASE": alias,
            "PUBLIC_BASE_URL": "https://mail.example.com",
            "SECRET_KEY": "k" * 40,
        },
    ):
        yield alias
        deliver()


# 1. Django's test runner -----------------------------------------------------------------


def test_manage_py_test_runs_on_sqlite(tmp_path: Path) -> None:
    """Django's runner renames the SQLite test database to a shared-cache memory database;
    its migrate (the ``mailroom`` migration) and mail sent in tests work there."""
    result = _manage(
        "test",
        "integration.integrations.django_project.shop.tests",
        "--noinput",
        env={"DJANGO_PROJECT_SQLITE": str(tmp_path / "app.db")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ran 4 tests" in result.stderr
    assert "\nOK\n" in result.stderr


# 2. A socket directory as HOST -----------------------------------------------------------


def test_a_socket_directory_host_goes_in_the_query(django_project: list[str]) -> None:
    from mailroom.integrations.django.settings import postgres_url  # noqa: PLC0415

    url = make_url(
        postgres_url(
            {"HOST": SOCKET_DIR, "PORT": "5432", "NAME": "shop", "USER": "app", "OPTIONS": {}}
        )
    )
    assert (url.host, url.database, url.port, url.username) == (None, "shop", 5432, "app")
    assert url.query["host"] == SOCKET_DIR
    tcp = make_url(postgres_url({"HOST": "db.internal", "NAME": "shop"}))
    assert (tcp.host, tcp.database, dict(tcp.query)) == ("db.internal", "shop", {})


def test_a_socket_directory_host_connects(django_project: list[str]) -> None:
    from mailroom.integrations.django.settings import postgres_url  # noqa: PLC0415

    if "pg" not in django_project:
        pytest.skip("PostgreSQL not reachable")
    if not Path(SOCKET_DIR, ".s.PGSQL.5432").exists():
        pytest.skip(f"no PostgreSQL socket in {SOCKET_DIR}")
    params = json.loads(os.environ["DJANGO_PROJECT_POSTGRES"])
    engine = create_outbox_engine(
        postgres_url({**params, "HOST": SOCKET_DIR}), durable=False, must_exist=True
    )
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT current_database()")) == params["NAME"]
            assert connection.scalar(text("SELECT count(*) FROM mailroom_messages")) >= 0
    finally:
        engine.dispose()


# 3. A tracked message retried under its idempotency key ----------------------------------


def test_a_tracked_message_can_be_retried_under_its_key(mail_to: str) -> None:
    from django.core.mail import EmailMultiAlternatives  # noqa: PLC0415

    from mailroom.errors import IdempotencyConflictError  # noqa: PLC0415

    def tracked(text_body: str) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives("t", text_body, to=["a@example.com"])
        message.attach_alternative('<p>hi <a href="https://example.com/x">x</a></p>', "text/html")
        message.idempotency_key = f"tracked-retry-{mail_to}"  # type: ignore[attr-defined]
        message.track_opens = message.track_clicks = True  # type: ignore[attr-defined]
        return message

    ids = []
    for _ in range(2):
        message = tracked("text")
        assert message.send() == 1
        ids.append(message.mailroom_status)  # type: ignore[attr-defined]
    assert isinstance(ids[0], int)
    assert ids[0] == ids[1]
    with pytest.raises(IdempotencyConflictError):
        tracked("other text").send()


# 5. A queued receiver that raises --------------------------------------------------------


def test_a_failing_queued_receiver_is_logged_not_raised(
    django_project: list[str],
    smtp_server: SMTPTestServer,
    deliver: Deliver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    from mailroom.integrations.django import signals  # noqa: PLC0415

    after: list[int] = []

    def broken(sender: object, **kwargs: Any) -> None:
        raise ValueError("receiver bug")

    def later(sender: object, message_pk: int, **kwargs: Any) -> None:
        after.append(message_pk)

    signals.queued.connect(broken)
    signals.queued.connect(later)
    try:
        with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": "default"}):
            with caplog.at_level(logging.ERROR, "django.dispatch"):
                assert send_mail("recv-1", "b", None, ["a@example.com"], fail_silently=True) == 1
                assert send_mail("recv-2", "b", None, ["a@example.com"]) == 1
            deliver()
    finally:
        signals.queued.disconnect(broken)
        signals.queued.disconnect(later)
    assert len(after) == 2  # the receivers after the broken one ran
    subjects = [
        str(message_from_bytes(r.data, policy=policy.default)["Subject"])
        for r in smtp_server.handler.received
    ]
    assert sorted(s for s in subjects if s.startswith("recv-")) == ["recv-1", "recv-2"]
    failures = [r for r in caplog.records if r.name == "django.dispatch"]
    # Django's log of each failure (DEBUG off: AdminEmailHandler mails it to ADMINS, through
    # this backend, without a queued signal of its own that would fail again).
    assert len(failures) == 2
    assert failures[0].exc_info is not None
    assert "receiver bug" in str(failures[0].exc_info[1])


# 6. A broken transaction ------------------------------------------------------------------


def test_a_broken_transaction_refuses_the_send(mail_to: str) -> None:
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.core.mail import EmailMessage  # noqa: PLC0415
    from django.db import IntegrityError, connections, transaction  # noqa: PLC0415
    from django.db.transaction import TransactionManagementError  # noqa: PLC0415

    alias = mail_to
    User.objects.using(alias).get_or_create(username=f"dup-{alias}")
    before = _outbox_count(alias)
    with transaction.atomic(using=alias):
        with pytest.raises(IntegrityError):
            User.objects.using(alias).create(username=f"dup-{alias}")
        assert connections[alias].needs_rollback
        message = EmailMessage("broken", "b", to=["a@example.com"])
        with pytest.raises(TransactionManagementError):
            message.send()
        assert message.mailroom_status is None  # type: ignore[attr-defined]
        transaction.set_rollback(True, using=alias)
    assert _outbox_count(alias) == before


def _outbox_count(alias: str) -> int:
    from django.db import connections  # noqa: PLC0415

    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM mailroom_messages")
        row = cursor.fetchone()
    return int(row[0])


# 7. Separate mode: the outbox fails after the commit --------------------------------------


def test_separate_mode_failure_after_commit_is_logged_and_spares_later_hooks(
    django_project: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    ran: list[str] = []
    unreachable = "postgresql://postgres@127.0.0.1:1/none"
    with (
        override_settings(MAILROOM={"DATABASE": "default", "DATABASE_URL": unreachable}),
        caplog.at_level(logging.ERROR, "mailroom.integrations.django.outbox"),
    ):
        with transaction.atomic():
            sent = send_mail("Lost-after-commit", "b", None, ["a@example.com"], fail_silently=True)
            transaction.on_commit(lambda: ran.append("the app's hook"))
        assert sent == 1
        # Outside a block nothing waits for a commit: the failure is the caller's.
        assert send_mail("Outside", "b", None, ["a@example.com"], fail_silently=True) == 0
    assert ran == ["the app's hook"]
    [record] = [r for r in caplog.records if "lost" in r.getMessage()]
    assert "'Lost-after-commit'" in record.getMessage()
    assert "a@example.com" in record.getMessage()


# 8. Django's defaults that are not Mailroom's ---------------------------------------------

_SETTINGS_PROBE = """
import json, sys
import django
from django.conf import settings
settings.configure(**json.loads(sys.argv[1]))
django.setup()
from mailroom.integrations.django.settings import mailroom_settings
s = mailroom_settings().local
print(json.dumps([s.EMAIL_SUBJECT_PREFIX, s.SERVER_EMAIL, s.DEFAULT_FROM_EMAIL, s.server_email]))
"""


def _mailroom_values(**django: Any) -> list[str]:
    base = {
        "INSTALLED_APPS": ["mailroom.integrations.django"],
        "DATABASES": {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    }
    result = subprocess.run(
        [sys.executable, "-c", _SETTINGS_PROBE, json.dumps({**base, **django})],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    values: list[str] = json.loads(result.stdout)
    return values


def test_django_defaults_meant_for_django_alone_stay_out() -> None:
    """A project that sets none: no "[Django] " on notifications, and Mailroom's own error
    mail from DEFAULT_FROM_EMAIL rather than "root@localhost"; DEFAULT_FROM_EMAIL's default
    is Django's, as Django's own backends use it."""
    assert _mailroom_values() == ["", None, "webmaster@localhost", "webmaster@localhost"]
    assert _mailroom_values(
        EMAIL_SUBJECT_PREFIX="[shop] ",
        SERVER_EMAIL="errors@example.com",
        DEFAULT_FROM_EMAIL="shop@example.com",
    ) == ["[shop] ", "errors@example.com", "shop@example.com", "errors@example.com"]


# 9. Signals across processes --------------------------------------------------------------


def test_each_event_is_signalled_once_across_commands_and_gaps(
    mail_to: str, deliver: Deliver
) -> None:
    """Two signal readers (two ``mailroom_worker`` commands) share the place in the log: one
    signal per event; an event recorded while none runs is signalled by the next one."""
    from django.core.mail import EmailMessage  # noqa: PLC0415

    from mailroom.integrations.django import signals  # noqa: PLC0415
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415
    from mailroom.integrations.django.events import EventSignals  # noqa: PLC0415

    got: list[int] = []

    def on_sent(sender: object, message_pk: int, **kwargs: Any) -> None:
        got.append(message_pk)

    def queue(subject: str) -> int:
        message = EmailMessage(subject, "b", to=["a@example.com"])
        message.send()
        pk: int = message.mailroom_status  # type: ignore[attr-defined]
        return pk

    settings = current_settings().settings
    signals.sent.connect(on_sent)
    try:
        with EventSignals(settings, poll_seconds=0.05), EventSignals(settings, poll_seconds=0.05):
            both = [queue("both-1"), queue("both-2")]
            deliver()
        assert sorted(pk for pk in got if pk in both) == both
        gap = queue("while none runs")
        deliver()
        got.clear()
        with EventSignals(settings, poll_seconds=0.05):
            pass  # its last read, at the end, finds the event
        assert [pk for pk in got if pk == gap] == [gap]
    finally:
        signals.sent.disconnect(on_sent)


# 13. Header names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-Ref\r\nX-Injected", "X-Ref\nBcc", "X Ref", "X:Ref", "X-Réf"])
def test_a_header_name_that_is_not_one_is_refused(mail_to: str, name: str) -> None:
    from django.core.mail import EmailMessage  # noqa: PLC0415

    before = _outbox_count(mail_to)
    message = EmailMessage("s", "b", "a@example.com", ["b@example.com"], headers={name: "v"})
    with pytest.raises(HeaderInjectionError, match=r"headers: .*X") as raised:
        message.send()
    assert repr(name) in str(raised.value)
    again = EmailMessage("s", "b", "a@example.com", ["b@example.com"], headers={name: "v"})
    assert again.send(fail_silently=True) == 0
    assert _outbox_count(mail_to) == before
    ok = EmailMessage("s", "b", "a@example.com", ["b@example.com"], headers={"X-Ref_1!": "v"})
    assert ok.send() == 1


# 15. The commands' errors -----------------------------------------------------------------


def test_commands_report_an_unmigrated_outbox_in_one_line(tmp_path: Path) -> None:
    """Shared mode, a SQLite database the project never migrated: one ``CommandError`` line
    naming the alias and ``manage.py migrate``, no traceback."""
    database = tmp_path / "app.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE shop_order (id INTEGER PRIMARY KEY)")
    env = {"DJANGO_PROJECT_SQLITE": str(database)}
    for command in (["mailroom_status"], ["mailroom_worker", "--once"]):
        result = _manage(*command, env=env)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith('CommandError: the outbox in DATABASES["default"]')
        assert "run `manage.py migrate`" in lines[0]
        assert "DATABASE_URL" not in lines[0]


def test_commands_report_an_unreachable_separate_outbox(django_project: list[str]) -> None:
    from django.core.management import call_command  # noqa: PLC0415
    from django.core.management.base import CommandError  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    unreachable = "postgresql://postgres@127.0.0.1:1/none"
    with override_settings(MAILROOM={"DATABASE": "default", "DATABASE_URL": unreachable}):
        for command in ("mailroom_status", "mailroom_migrate", "mailroom_worker"):
            args = ["--once"] if command == "mailroom_worker" else []
            with pytest.raises(CommandError) as raised:
                call_command(command, *args, stdout=io.StringIO())
            message = str(raised.value)
            assert message.startswith('the outbox in MAILROOM["DATABASE_URL"] cannot be used')
            assert "\n" not in message


def test_a_wrong_setting_is_a_command_error(django_project: list[str]) -> None:
    from django.core.management import call_command  # noqa: PLC0415
    from django.core.management.base import CommandError  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    with (
        override_settings(MAILROOM={"DATABASE": "nowhere"}),
        pytest.raises(CommandError, match=r"MAILROOM.*nowhere.*DATABASES"),
    ):
        call_command("mailroom_status", stdout=io.StringIO())


# Risk 12: the SQLite system check ---------------------------------------------------------


def test_the_system_check_warns_of_sqlite_options(tmp_path: Path) -> None:
    env = {"DJANGO_PROJECT_SQLITE": str(tmp_path / "app.db")}
    bare = _manage("check", env={**env, "DJANGO_PROJECT_SQLITE_OPTIONS": "{}"})
    assert bare.returncode == 0, bare.stderr
    assert "(mailroom.W001)" in bare.stderr
    assert '"transaction_mode": "IMMEDIATE" and "timeout": 20' in bare.stderr
    assert "README" in bare.stderr
    half = _manage("check", env={**env, "DJANGO_PROJECT_SQLITE_OPTIONS": '{"timeout": 20}'})
    assert "(mailroom.W001)" in half.stderr
    assert 'lack "transaction_mode": "IMMEDIATE": a block' in half.stderr
    recommended = _manage("check", env=env)
    assert recommended.returncode == 0, recommended.stderr
    assert "mailroom.W001" not in recommended.stderr + recommended.stdout
