"""The test email: two messages straight through the configured transport, one from
``DEFAULT_FROM_EMAIL`` and one from the noreply address, and advice when one fails.

``mailroom send-test-email`` prints the report as it goes; the admin status page runs
:func:`run_test_email` in a thread and shows the lines it returns, with the SMTP login's name and
password taken out (a relay's reply may echo the user name back).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from mailroom.config import Settings, TransportName
from mailroom.delivery.capture_sink import DatabaseCaptureSink
from mailroom.delivery.database_thread import DatabaseThread
from mailroom.errors import (
    AuthenticationError,
    DeliveryError,
    HeloRefusedError,
    MailroomError,
    RelayDeniedError,
    RelayUnreachableError,
    TLSError,
)
from mailroom.message import Message, build_envelope
from mailroom.outbox.database_url import display_url
from mailroom.outbox.store import Outbox
from mailroom.transports import CaptureSink, SMTPTransport, Transport, transport_from_settings
from mailroom.transports.doctor import diagnose
from mailroom.transports.ehlo import EhloSource

__all__ = [
    "TestEmailReport",
    "capture_sink",
    "outcome_advice",
    "run_test_email",
    "send_test_emails",
]

Say = Callable[[str], None]
"""Takes one line of the report (no newline in it)."""

# Failures that will hit every message the same way: after one, the second test is pointless.
_CONNECTION_LEVEL = (
    RelayUnreachableError,
    TLSError,
    AuthenticationError,
    HeloRefusedError,
    RelayDeniedError,
)


@dataclass(frozen=True, slots=True)
class TestEmailReport:
    """What a test email did, line by line, and whether both messages went through."""

    __test__ = False  # a report, not a test class for pytest to collect

    ok: bool
    lines: tuple[str, ...]
    """The report as ``send-test-email`` prints it, the advice included."""
    advice: str | None
    """After success, what happened to the messages and what to do next."""


def _test_message(to: tuple[str, ...], sender: str, which: str, number: int) -> Message:
    host = socket.gethostname()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Message(
        to=list(to),
        from_email=sender,
        subject=f"Mailroom test email {number} of 2 (from {which})",
        text=(
            f"This is a test email sent by `mailroom send-test-email`\non {host} at {now}.\n\n"
            f"It was sent from the {which} address,\n{sender}.\n"
            "If you received it, Mailroom can send mail from that address.\n"
        ),
    )


def _ehlo_line(transport: Transport) -> str | None:
    """Which name we greeted the relay with, and why: relays may refuse an unqualified one."""
    if not isinstance(transport, SMTPTransport) or transport.ehlo_name is None:
        return None
    name, source, fqdn = transport.ehlo_name
    if source is EhloSource.SETTING:
        why = "EMAIL_LOCAL_HOSTNAME"
    elif source is EhloSource.FQDN:
        why = "this machine's name; set EMAIL_LOCAL_HOSTNAME to give another"
    elif fqdn:
        why = (
            f"our address on the connection: this machine's name {fqdn!r} is not fully "
            "qualified; set EMAIL_LOCAL_HOSTNAME to give a name the relay accepts"
        )
    else:
        why = (
            "our address on the connection: this machine's name could not be looked up in "
            "time; set EMAIL_LOCAL_HOSTNAME to give one"
        )
    return f"EHLO name: {name} ({why})"


@contextmanager
def capture_sink(settings: Settings) -> Iterator[CaptureSink | None]:
    """For the ``capture`` transport, the outbox database's captured mail (its tables created
    in a new SQLite file, as a first send would); for any other, nothing."""
    if settings.MAILROOM_TRANSPORT is not TransportName.CAPTURE:
        yield None
        return
    outbox = Outbox(settings)
    try:
        outbox.ensure_schema()
        db = DatabaseThread("mailroom-capture")
        try:
            yield DatabaseCaptureSink(outbox.engine, db, keep=settings.CAPTURE_MAX_MESSAGES)
        finally:
            db.shutdown()
    finally:
        outbox.dispose()


async def send_test_emails(
    settings: Settings, to: tuple[str, ...], say: Say, capture_sink: CaptureSink | None = None
) -> bool:
    """Send both messages, saying what happens as it happens; ``True`` if both went through.

    Everything is said, failures included: the report is the output, in order; the result
    says whether it worked. Lines are raw text (a relay's reply among them): make them safe
    for where they are shown.
    """
    transport = transport_from_settings(settings, capture_sink=capture_sink)
    say(f"Transport: {transport.describe()}")
    ok = True
    ehlo_shown = False
    senders = (
        ("DEFAULT_FROM_EMAIL", settings.DEFAULT_FROM_EMAIL),
        ("NOREPLY_EMAIL_ADDRESS", settings.noreply_address),
    )
    try:
        for number, (setting, sender) in enumerate(senders, start=1):
            say(f"[{number}/2] from {setting} <{sender}> to {', '.join(to)} ...")
            try:
                envelope = build_envelope(
                    _test_message(to, sender, setting, number),
                    default_from=settings.DEFAULT_FROM_EMAIL,
                    max_size=settings.EMAIL_MAX_MESSAGE_SIZE,
                )
                try:
                    result = await transport.send(envelope)
                finally:
                    ehlo = None if ehlo_shown else _ehlo_line(transport)
                    if ehlo is not None:
                        say(f"      {ehlo}")
                        ehlo_shown = True
            except DeliveryError as exc:
                ok = False
                say(f"      FAILED: {exc}")
                advice = diagnose(exc, settings, sender_setting=setting)
                for line in advice.splitlines():
                    say(f"      {line}")
                if isinstance(exc, _CONNECTION_LEVEL):
                    say("      (not trying the second message: it would fail the same way)")
                    break
                continue
            except MailroomError as exc:
                ok = False
                say(f"      FAILED: {exc}")
                continue
            where = f" ({result.reply})" if result.reply else ""
            say(f"      delivered to {result.location}{where}: {result.message_id}")
            for recipient, error in result.refused.items():
                ok = False
                say(f"      refused for {recipient}: {error}")
    finally:
        await transport.close()
    return ok


def outcome_advice(settings: Settings) -> str:
    """After both messages went through: where they are, and what to do next."""
    transport = settings.MAILROOM_TRANSPORT
    if transport is TransportName.SMTP:
        return "Both test messages were accepted. Check the inbox (and the spam folder)."
    # Nothing was sent anywhere: saying "check the inbox" here sends a new user looking for
    # mail that never left the machine.
    where = {
        TransportName.CONSOLE: "were printed above",
        TransportName.FILE: f"were written to {settings.EMAIL_FILE_PATH}",
        TransportName.CAPTURE: "were stored as captured mail in the outbox database "
        f"{display_url(settings.DATABASE_URL)}, where `mailroom serve` shows them "
        "(GET /api/v1/captured)",
    }.get(transport, "were thrown away")
    return (
        # Both names: MAILROOM_TRANSPORT is the one to set, EMAIL_BACKEND the one an
        # existing (Django-style) settings file may already hold.
        f"Both test messages {where} (MAILROOM_TRANSPORT or EMAIL_BACKEND is {transport.value}, "
        f"from {settings.source_of('MAILROOM_TRANSPORT')}): nothing left this machine.\n"
        "To send for real, name your relay: set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, "
        "EMAIL_USE_TLS or EMAIL_USE_SSL; the password in the secrets file or "
        "EMAIL_HOST_PASSWORD), or one EMAIL_URL such as smtp://user@smtp.example.com:587?tls=true,"
        " then run this again."
    )


def _login_hidden(settings: Settings) -> Callable[[str], str]:
    """A filter taking the SMTP login's user name and password out of a line."""
    secrets = [
        (settings.EMAIL_HOST_PASSWORD.get_secret_value(), "***"),
        (settings.EMAIL_HOST_USER, "(EMAIL_HOST_USER)"),
    ]
    secrets = [(secret, shown) for secret, shown in secrets if secret]

    def hide(line: str) -> str:
        for secret, shown in secrets:
            line = line.replace(secret, shown)
        return line

    return hide


def run_test_email(settings: Settings, to: tuple[str, ...]) -> TestEmailReport:
    """Send the test email and return its report, the SMTP login left out of every line.

    Blocking (it runs its own event loop and, for ``capture``, its own database thread): call
    it from a worker thread in an async server.
    """
    hide = _login_hidden(settings)
    lines: list[str] = []
    with capture_sink(settings) as sink:
        ok = asyncio.run(
            send_test_emails(settings, to, lambda line: lines.append(hide(line)), sink)
        )
    advice = hide(outcome_advice(settings)) if ok else None
    return TestEmailReport(ok=ok, lines=tuple(lines), advice=advice)
