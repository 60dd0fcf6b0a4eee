"""The test email: two messages straight through the configured transport, one from
``DEFAULT_FROM_EMAIL`` and one from the noreply address, and advice when one fails.

Each is committed to the outbox first, in the ``test`` stream, and its attempt and events are
recorded as a worker records its sends (:mod:`mailroom.delivery.immediate_sends`), so the
message log shows it; it is sent at once all the same, and never retried. When the outbox
database cannot be written the test still runs (it checks the relay, not the database) and
says the messages were not recorded.

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

from sqlalchemy.exc import SQLAlchemyError

from mailroom.config import Settings, TransportName
from mailroom.delivery.capture_sink import DatabaseCaptureSink
from mailroom.delivery.database_thread import DatabaseThread
from mailroom.delivery.immediate_sends import ImmediateSender
from mailroom.errors import (
    AuthenticationError,
    DatabaseError,
    DeliveryError,
    HeloRefusedError,
    MailroomError,
    RelayDeniedError,
    RelayUnreachableError,
    SchemaOutdatedError,
    TLSError,
)
from mailroom.message import Message, build_envelope
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.database_url import display_url
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import TEST_STREAM
from mailroom.transports import CaptureSink, SMTPTransport, Transport, transport_from_settings
from mailroom.transports.base import SendResult
from mailroom.transports.doctor import diagnose, login_hidden
from mailroom.transports.ehlo import EhloSource

__all__ = [
    "TestEmailOutbox",
    "TestEmailReport",
    "TestEmailResult",
    "outcome_advice",
    "run_test_email",
    "send_test_emails",
    "test_email_outbox",
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
    message_pks: tuple[int, ...] = ()
    """The outbox ids of the messages recorded (none when the database could not be written)."""


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


@dataclass(frozen=True, slots=True)
class TestEmailOutbox:
    """Where the test email is recorded, and, for ``capture``, where it is kept."""

    __test__ = False

    outbox: Outbox | None
    """``None`` when the database could not be opened: the messages are sent unrecorded."""
    not_recorded: str | None
    """Why not, when ``outbox`` is ``None``."""
    capture_sink: CaptureSink | None


@contextmanager
def test_email_outbox(settings: Settings) -> Iterator[TestEmailOutbox]:
    """The outbox database and, for the ``capture`` transport, its captured mail.

    For ``capture`` the database is where the mail is kept: its tables are created in a new
    SQLite file (as a first send would), and a database that cannot be opened is an error. For
    any other transport the test is of the relay: the outbox must already exist (no new file
    is left in whatever folder the command ran in), and when it cannot be opened or written the
    test goes on without recording the messages.
    """
    if settings.MAILROOM_TRANSPORT is TransportName.CAPTURE:
        with _capture_outbox(settings) as where:
            yield where
        return
    outbox, problem = _existing_outbox(settings)
    try:
        yield TestEmailOutbox(outbox, problem, None)
    finally:
        if outbox is not None:
            outbox.dispose()


@contextmanager
def _capture_outbox(settings: Settings) -> Iterator[TestEmailOutbox]:
    outbox = Outbox(settings)
    try:
        outbox.ensure_schema()
        db = DatabaseThread("mailroom-capture")
        try:
            sink = DatabaseCaptureSink(outbox.engine, db, keep=settings.CAPTURE_MAX_MESSAGES)
            yield TestEmailOutbox(outbox, None, sink)
        finally:
            db.shutdown()
    finally:
        outbox.dispose()


def _existing_outbox(settings: Settings) -> tuple[Outbox | None, str | None]:
    """The outbox, ready to write, or ``None`` and why not."""
    outbox: Outbox | None = None
    try:
        engine = create_outbox_engine(settings.DATABASE_URL, durable=True, must_exist=True)
        outbox = Outbox(settings, engine=engine)
        outbox.ensure_schema()
    except (DatabaseError, SchemaOutdatedError, SQLAlchemyError) as exc:
        if outbox is not None:
            outbox.dispose()
        return None, str(exc)
    return outbox, None


async def send_test_emails(
    settings: Settings,
    to: tuple[str, ...],
    say: Say,
    where: TestEmailOutbox,
    *,
    name_login: bool = True,
) -> TestEmailResult:
    """Send both messages, saying what happens as it happens. The advice names the SMTP
    login's user unless ``name_login`` is false (a report shown on a page).

    Everything is said, failures included: the report is the output, in order; the result
    says whether it worked and which outbox messages the test made. Lines are raw text (a
    relay's reply among them): make them safe for where they are shown.
    """
    transport = transport_from_settings(settings, capture_sink=where.capture_sink)
    say(f"Transport: {transport.describe()}")
    sender = _Sender(settings, transport, where, say)
    ok = True
    ehlo_shown = False
    senders = (
        ("DEFAULT_FROM_EMAIL", settings.DEFAULT_FROM_EMAIL),
        ("NOREPLY_EMAIL_ADDRESS", settings.noreply_address),
    )
    try:
        for number, (setting, from_email) in enumerate(senders, start=1):
            say(f"[{number}/2] from {setting} <{from_email}> to {', '.join(to)} ...")
            try:
                try:
                    result = await sender.send(_test_message(to, from_email, setting, number))
                finally:
                    ehlo = None if ehlo_shown else _ehlo_line(transport)
                    if ehlo is not None:
                        say(f"      {ehlo}")
                        ehlo_shown = True
            except DeliveryError as exc:
                ok = False
                say(f"      FAILED: {exc}")
                advice = diagnose(exc, settings, sender_setting=setting, name_login=name_login)
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
            where_to = f" ({result.reply})" if result.reply else ""
            say(f"      delivered to {result.location}{where_to}: {result.message_id}")
            for recipient, error in result.refused.items():
                ok = False
                say(f"      refused for {recipient}: {error}")
    finally:
        await transport.close()
    return TestEmailResult(ok, tuple(sender.recorded))


@dataclass(frozen=True, slots=True)
class TestEmailResult:
    """Whether both messages went through, and the outbox ids of those recorded."""

    __test__ = False

    ok: bool
    message_pks: tuple[int, ...]


class _Sender:
    """Sends each test message recorded in the outbox when it can, unrecorded when not."""

    def __init__(
        self, settings: Settings, transport: Transport, where: TestEmailOutbox, say: Say
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._say = say
        self._immediate = (
            ImmediateSender(
                where.outbox,
                transport,
                stream=TEST_STREAM,
                name="send-test-email",
                lease_seconds=settings.WORKER_LEASE_SECONDS,
                # Kept and shown on pages: the relay's reply without the login it may echo.
                redact=login_hidden(settings),
            )
            if where.outbox is not None
            else None
        )
        if where.not_recorded is not None:
            say(f"Not recorded in the outbox (the database: {where.not_recorded})")
        self.recorded: list[int] = []

    async def send(self, message: Message) -> SendResult:
        if self._immediate is not None:
            try:
                sent = await self._immediate.send(message)
            except (DatabaseError, SQLAlchemyError) as exc:
                # Nothing was sent. The relay is what is being tested: go on, unrecorded.
                self._say(f"      not recorded in the outbox (the database: {exc})")
                self._immediate = None
            else:
                self.recorded.append(sent.message_pk)
                self._say(f"      recorded as message {sent.message_pk} (stream {TEST_STREAM})")
                if sent.not_recorded is not None:
                    self._say(
                        "      its outcome could not be recorded (the database: "
                        f"{sent.not_recorded}); a worker sends it again when its lease runs out"
                    )
                if isinstance(sent.outcome, DeliveryError):
                    raise sent.outcome
                return sent.outcome
        envelope = build_envelope(
            message,
            default_from=self._settings.DEFAULT_FROM_EMAIL,
            max_size=self._settings.EMAIL_MAX_MESSAGE_SIZE,
        )
        return await self._transport.send(envelope)


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
    if settings.source_of("EMAIL_HOST") != "default":
        # The relay is named already: only the transport keeps mail from it.
        next_step = (
            f"To send for real through the relay the settings name, {settings.EMAIL_HOST}:"
            f"{settings.port}, set MAILROOM_TRANSPORT=smtp, then run this again."
        )
    else:
        next_step = (
            "To send for real, name your relay: set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER,"
            " EMAIL_USE_TLS or EMAIL_USE_SSL; the password in the secrets file or "
            "EMAIL_HOST_PASSWORD), or one EMAIL_URL such as "
            "smtp://user@smtp.example.com:587?tls=true, then run this again."
        )
    return (
        # Both names: MAILROOM_TRANSPORT is the one to set, EMAIL_BACKEND the one an
        # existing (Django-style) settings file may already hold.
        f"Both test messages {where} (MAILROOM_TRANSPORT or EMAIL_BACKEND is {transport.value}, "
        f"from {settings.source_of('MAILROOM_TRANSPORT')}): nothing left this machine.\n"
        + next_step
    )


def run_test_email(settings: Settings, to: tuple[str, ...]) -> TestEmailReport:
    """Send the test email and return its report, the SMTP login left out of every line (the
    advice names its setting; a relay's reply that echoes it is filtered).

    Blocking (it runs its own event loop and, for ``capture``, its own database thread): call
    it from a worker thread in an async server.
    """
    hide = login_hidden(settings)
    lines: list[str] = []
    with test_email_outbox(settings) as where:
        result = asyncio.run(
            send_test_emails(
                settings, to, lambda line: lines.append(hide(line)), where, name_login=False
            )
        )
    advice = hide(outcome_advice(settings)) if result.ok else None
    return TestEmailReport(
        ok=result.ok, lines=tuple(lines), advice=advice, message_pks=result.message_pks
    )
