"""Django's mail API through Mailroom's EmailBackend, into the outbox, out through the worker
to a real SMTP server: ``send_mail``, ``EmailMultiAlternatives`` with an attachment and an
inline image, ``mail_admins``/``mail_managers``, the admin error handler, the password reset
form, per-message extras, and the transactional outbox on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage as StdMessage
from email.mime.image import MIMEImage
from typing import Any

import pytest

from mailroom.delivery.worker import WorkerStats
from support.smtp_server import SMTPTestServer

Deliver = Callable[[], WorkerStats]

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def mail_to(django_project: list[str], alias: str, smtp_server: SMTPTestServer) -> Any:
    """Django's settings pointed at ``smtp_server`` and the outbox in ``alias``'s database."""
    from django.test.utils import override_settings  # noqa: PLC0415

    with override_settings(EMAIL_PORT=smtp_server.port, MAILROOM={"DATABASE": alias}):
        yield smtp_server


def parsed(data: bytes) -> StdMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, StdMessage)
    return message


def test_send_mail_reaches_the_relay(mail_to: SMTPTestServer, deliver: Deliver) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415

    assert send_mail("Grüße", "Hallo Welt", None, ["Zoë <zoe@example.com>"]) == 1
    assert deliver().sent == 1
    [received] = mail_to.handler.received
    assert received.mail_from == "shop@example.com"
    assert received.rcpt_tos == ["zoe@example.com"]
    message = parsed(received.data)
    assert message["Subject"] == "Grüße"
    assert message["To"] == "Zoë <zoe@example.com>"
    assert message.get_content().strip() == "Hallo Welt"


def test_send_mass_mail_on_one_connection(mail_to: SMTPTestServer, deliver: Deliver) -> None:
    from django.core.mail import get_connection, send_mass_mail  # noqa: PLC0415

    connection = get_connection()
    connection.open()
    try:
        sent = send_mass_mail(
            (
                ("One", "1", None, ["one@example.com"]),
                ("Two", "2", "other@example.com", ["two@example.com", "three@example.com"]),
                ("Nobody", "3", None, []),  # no recipient: not sent, not counted, as Django
            ),
            connection=connection,
        )
    finally:
        connection.close()
    assert sent == 2
    assert deliver().sent == 2
    envelopes = sorted((r.mail_from, tuple(r.rcpt_tos)) for r in mail_to.handler.received)
    assert envelopes == [
        ("other@example.com", ("two@example.com", "three@example.com")),
        ("shop@example.com", ("one@example.com",)),
    ]


def test_alternatives_attachment_and_inline_image(
    mail_to: SMTPTestServer, deliver: Deliver
) -> None:
    from django.core.mail import EmailMultiAlternatives  # noqa: PLC0415

    message = EmailMultiAlternatives(
        "Your invoice",
        "See the invoice.",
        to=["ann@example.com"],
        cc=["cc@example.com"],
        bcc=["audit@example.com"],
        reply_to=["billing@example.com"],
        headers={"X-Invoice": "42"},
    )
    message.attach_alternative('<p>See <img src="cid:logo"></p>', "text/html")
    message.attach("invoice.pdf", b"%PDF-1.4 fake", "application/pdf")
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo>")
    logo.add_header("Content-Disposition", "inline", filename="logo.png")
    message.attach(logo)
    assert message.send() == 1
    assert isinstance(message.mailroom_status, int)  # type: ignore[attr-defined]
    assert deliver().sent == 1
    [received] = mail_to.handler.received
    assert sorted(received.rcpt_tos) == ["ann@example.com", "audit@example.com", "cc@example.com"]
    sent = parsed(received.data)
    assert "Bcc" not in sent
    assert sent["Reply-To"] == "billing@example.com"
    assert sent["X-Invoice"] == "42"
    html = sent.get_body(("html",))
    assert html is not None
    assert html.get_content().strip() == '<p>See <img src="cid:logo"></p>'
    files = {part.get_filename(): part for part in sent.iter_attachments()}
    assert files["invoice.pdf"].get_content() == b"%PDF-1.4 fake"
    assert files["logo.png"]["Content-ID"] == "<logo>"
    assert files["logo.png"].get_content() == PNG


def test_mail_admins_managers_and_the_error_handler(
    mail_to: SMTPTestServer, deliver: Deliver
) -> None:
    from django.core.mail import mail_admins, mail_managers  # noqa: PLC0415
    from django.utils.log import AdminEmailHandler  # noqa: PLC0415

    mail_admins("disk full", "on db1")
    mail_managers("new order", "number 7")
    logger = logging.getLogger("test.django.errors")
    handler = AdminEmailHandler()
    logger.addHandler(handler)
    try:
        logger.error("the payment provider is down")
    finally:
        logger.removeHandler(handler)
    assert deliver().sent == 3
    by_subject = {parsed(r.data)["Subject"]: r for r in mail_to.handler.received}
    assert set(by_subject) == {
        "[shop] disk full",
        "[shop] new order",
        "[shop] ERROR: the payment provider is down",
    }
    admins = by_subject["[shop] disk full"]
    assert admins.mail_from == "errors@example.com"
    assert sorted(admins.rcpt_tos) == ["ada@example.com", "bob@example.com"]
    assert by_subject["[shop] new order"].rcpt_tos == ["mia@example.com"]


def test_the_password_reset_form(mail_to: SMTPTestServer, deliver: Deliver) -> None:
    from django.contrib.auth.forms import PasswordResetForm  # noqa: PLC0415
    from django.contrib.auth.models import User  # noqa: PLC0415

    # The users are in the default database; the outbox in the one under test.
    user = User.objects.create_user("reset", "reset@example.com", "a-long-password-1")
    try:
        form = PasswordResetForm({"email": "reset@example.com"})
        assert form.is_valid()
        form.save(domain_override="example.com")
        assert deliver().sent == 1
        [received] = mail_to.handler.received
        assert received.rcpt_tos == ["reset@example.com"]
        sent = parsed(received.data)
        assert sent["Subject"] == "Password reset on example.com"
        assert "http://example.com/reset/" in sent.get_content()
        assert "(reset)" in sent.get_content()
    finally:
        user.delete()


def test_a_rollback_sends_nothing_and_a_commit_sends_once(
    mail_to: SMTPTestServer, deliver: Deliver, alias: str
) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415

    from integration.integrations.django_project.shop.models import Order  # noqa: PLC0415

    class AbandonError(Exception):
        pass

    def order_and_mail_then_fail() -> None:
        with transaction.atomic(using=alias):
            Order.objects.using(alias).create(number=f"rolled-back-{alias}")
            assert send_mail("Order rolled back", "no", None, ["a@example.com"]) == 1
            raise AbandonError

    with pytest.raises(AbandonError):
        order_and_mail_then_fail()
    assert not Order.objects.using(alias).filter(number=f"rolled-back-{alias}").exists()
    assert deliver().sent == 0

    with transaction.atomic(using=alias):
        order = Order.objects.using(alias).create(number=f"committed-{alias}")
        assert send_mail("Order committed", "yes", None, ["b@example.com"]) == 1
        # Not yet committed: a worker (its own connection) sees nothing due.
        if alias == "pg":
            assert deliver().sent == 0
    assert deliver().sent == 1
    assert deliver().sent == 0
    assert [parsed(r.data)["Subject"] for r in mail_to.handler.received] == ["Order committed"]
    order.delete()


def test_a_savepoint_rolled_back_inside_a_committed_block(
    mail_to: SMTPTestServer, deliver: Deliver, alias: str
) -> None:
    from django.core.mail import send_mail  # noqa: PLC0415
    from django.db import transaction  # noqa: PLC0415

    with transaction.atomic(using=alias):
        send_mail("kept", "1", None, ["a@example.com"])
        try:
            with transaction.atomic(using=alias):
                send_mail("dropped", "2", None, ["a@example.com"])
                raise RuntimeError
        except RuntimeError:
            pass
    assert deliver().sent == 1
    assert [parsed(r.data)["Subject"] for r in mail_to.handler.received] == ["kept"]


def test_per_message_extras(mail_to: SMTPTestServer, deliver: Deliver, alias: str) -> None:
    from django.core.mail import EmailMessage  # noqa: PLC0415

    from mailroom.integrations.django import signals  # noqa: PLC0415
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415
    from mailroom.outbox import operations  # noqa: PLC0415
    from mailroom.outbox.store import Outbox  # noqa: PLC0415

    queued: list[dict[str, Any]] = []

    def on_queued(sender: object, **kwargs: Any) -> None:
        queued.append(kwargs)

    signals.queued.connect(on_queued)
    try:
        later = EmailMessage("later", "b", to=["later@example.com"])
        later.send_at = datetime.now(UTC) + timedelta(hours=1)  # type: ignore[attr-defined]
        keyed = [EmailMessage("keyed", "k", to=["k@example.com"]) for _ in range(2)]
        for message in keyed:
            message.idempotency_key = f"order-7-{alias}"  # type: ignore[attr-defined]
            message.stream = "receipts"  # type: ignore[attr-defined]
            message.metadata = {"order": 7}  # type: ignore[attr-defined]
            message.tags = ["billing"]  # type: ignore[attr-defined]
            message.envelope_sender = "bounces@example.com"  # type: ignore[attr-defined]
        assert later.send() == 1
        assert keyed[0].send() == 1
        assert keyed[1].send() == 1
    finally:
        signals.queued.disconnect(on_queued)
    first, second = (m.mailroom_status for m in keyed)  # type: ignore[attr-defined]
    assert first == second
    assert [q["stream"] for q in queued] == ["transactional", "receipts", "receipts"]
    outbox = Outbox(current_settings().settings)
    try:
        detail = outbox.get(first)
        assert detail is not None
        assert detail.extra == {"order": 7, "tags": ["billing"]}
        assert detail.stream == "receipts"
    finally:
        outbox.dispose()
    assert deliver().sent == 1  # the keyed one, once; the later one is not due
    [received] = mail_to.handler.received
    assert received.mail_from == "bounces@example.com"
    # The later one stays scheduled, out of the next tests' way.
    engine = Outbox(current_settings().settings).engine
    try:
        with engine.begin() as connection:
            cancelled = operations.cancel(
                connection,
                now=time.time(),
                ids=[later.mailroom_status],  # type: ignore[attr-defined]
            )
        assert cancelled == 1
    finally:
        engine.dispose()


def test_fail_silently_and_a_bad_message(mail_to: SMTPTestServer, deliver: Deliver) -> None:
    from django.core.mail import EmailMessage, get_connection  # noqa: PLC0415

    from mailroom.errors import MessageError  # noqa: PLC0415

    bad = EmailMessage("bad", "x", to=["ok@example.com"])
    bad.stream = ""  # type: ignore[attr-defined]
    with pytest.raises(MessageError, match="stream"):
        bad.send()
    good = EmailMessage("good", "x", to=["ok@example.com"])
    with get_connection(fail_silently=True) as connection:
        assert connection.send_messages([bad, good, EmailMessage("nobody", "x")]) == 1
    assert deliver().sent == 1
    assert [parsed(r.data)["Subject"] for r in mail_to.handler.received] == ["good"]
