"""The project's own tests, as ``manage.py test`` runs them: Django's test runner makes a test
database (for SQLite, a shared-cache memory database) and migrates it — the ``mailroom``
migration included. Run by ``test_django_hardening.py`` in a subprocess, not by pytest.

Django's runner swaps ``EMAIL_BACKEND`` for its ``locmem`` one (``mail.outbox``); a test that
wants Mailroom's outbox sets it back with ``override_settings``. An async test that sends
through Mailroom is a ``TransactionTestCase``: the backend commits on a connection of its own,
which SQLite's shared-cache test database refuses while a ``TestCase``'s transaction writes."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core import mail
from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings

from integration.integrations.django_project.shop.models import Order

MAILROOM_BACKEND = "mailroom.integrations.django.EmailBackend"


def _subjects() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT subject FROM mailroom_messages ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


class SendsMailTests(TestCase):
    def test_django_runner_keeps_mail_in_locmem(self) -> None:
        mail.send_mail("Welcome", "b", None, ["buyer@example.com"])
        assert [m.subject for m in mail.outbox] == ["Welcome"]
        assert _subjects() == []

    @override_settings(EMAIL_BACKEND=MAILROOM_BACKEND)
    def test_an_order_confirmation_is_in_the_outbox(self) -> None:
        order = Order.objects.create(number="A-1")
        sent = mail.send_mail(f"Order {order.number}", "Thanks", None, ["buyer@example.com"])
        assert sent == 1
        assert _subjects() == ["Order A-1"]

    @override_settings(EMAIL_BACKEND=MAILROOM_BACKEND)
    def test_each_test_starts_without_the_others_mail(self) -> None:
        message = mail.EmailMessage("Second", "b", None, ["buyer@example.com"])
        message.send()
        assert isinstance(message.mailroom_status, int)  # type: ignore[attr-defined]
        assert _subjects() == ["Second"]


class SendsMailFromAsyncCodeTests(TransactionTestCase):
    @override_settings(EMAIL_BACKEND=MAILROOM_BACKEND)
    async def test_an_async_test_sends_through_the_outbox(self) -> None:
        message = mail.EmailMessage("From a coroutine", "b", None, ["buyer@example.com"])
        assert message.send() == 1
        assert isinstance(message.mailroom_status, int)  # type: ignore[attr-defined]
        assert "From a coroutine" in await sync_to_async(_subjects)()
