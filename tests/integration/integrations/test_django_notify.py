"""``mailroom.integrations.django.notify``: Django ``User`` objects as recipients and actor, a
template from ``EMAIL_TEMPLATE_DIRS``, and the notification committed with the caller's
transaction (or not at all) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage as StdMessage
from pathlib import Path

import pytest

from mailroom.delivery.worker import WorkerStats
from support.smtp_server import SMTPTestServer

Deliver = Callable[[], WorkerStats]


def test_notify_users_in_the_callers_transaction(
    django_project: list[str],
    alias: str,
    smtp_server: SMTPTestServer,
    deliver: Deliver,
    tmp_path: Path,
) -> None:
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    import mailroom  # noqa: PLC0415
    from mailroom.integrations.django.notify import notify  # noqa: PLC0415

    (tmp_path / "django_shipped.subject.txt").write_text("Order {{ number }} shipped")
    (tmp_path / "django_shipped.txt").write_text(
        "Hello {{ recipient.name }}, from {{ actor.name }}"
    )
    mailroom.register_notification_type("django.shipped", template="django_shipped")
    users = User.objects.bulk_create(
        [
            User(username=f"ann-{alias}", email="ann@example.com", first_name="Ann"),
            User(username=f"cy-{alias}", email="cy@example.com", first_name="Cy", last_name="Z"),
            User(username=f"noaddress-{alias}", email=""),
        ]
    )
    ann, cy, nobody = (User.objects.get(username=u.username) for u in users)
    settings = {"DATABASE": alias, "EMAIL_TEMPLATE_DIRS": [str(tmp_path)]}
    try:
        with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM=settings):

            def notify_then_fail() -> None:
                with transaction.atomic(using=alias):
                    notify("django.shipped", to=[cy], actor=ann, context={"number": 1})
                    raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError):
                notify_then_fail()
            assert deliver().sent == 0
            with transaction.atomic(using=alias):
                result = notify(
                    "django.shipped", to=[ann, cy, nobody], actor=ann, context={"number": 2}
                )
            assert len(result.outbox_ids) == 1  # Ann is the actor; nobody has no address
            assert result.skipped == {
                "ann@example.com": "is_actor",
                f"user:{nobody.pk}": "no_address",
            }
            assert deliver().sent == 1
    finally:
        User.objects.filter(pk__in=[ann.pk, cy.pk, nobody.pk]).delete()
    [received] = smtp_server.handler.received
    assert received.rcpt_tos == ["cy@example.com"]
    sent = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(sent, StdMessage)
    assert sent["Subject"].endswith("Order 2 shipped")
    assert "Hello Cy Z, from Ann" in sent.get_content()
    assert "Ann via" in sent["From"]
