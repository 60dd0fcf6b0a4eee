"""``mailroom send-test-email``: two messages straight through the transport, and advice."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from mailroom.cli.base import cli_settings, config_option, main
from mailroom.cli.render import printable
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

# Failures that will hit every message the same way: after one, the second test is pointless.
_CONNECTION_LEVEL = (
    RelayUnreachableError,
    TLSError,
    AuthenticationError,
    HeloRefusedError,
    RelayDeniedError,
)


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
def _capture_sink(settings: Settings) -> Iterator[CaptureSink | None]:
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


async def _send_test_emails(
    settings: Settings, to: tuple[str, ...], capture_sink: CaptureSink | None = None
) -> bool:
    # Everything goes to stdout, failures included: the report is this command's output, and
    # one stream keeps it in order when piped; the exit status says whether it worked.
    transport = transport_from_settings(settings, capture_sink=capture_sink)
    click.echo(f"Transport: {transport.describe()}")
    ok = True
    ehlo_shown = False
    senders = (
        ("DEFAULT_FROM_EMAIL", settings.DEFAULT_FROM_EMAIL),
        ("NOREPLY_EMAIL_ADDRESS", settings.noreply_address),
    )
    try:
        for number, (setting, sender) in enumerate(senders, start=1):
            click.echo(f"[{number}/2] from {setting} <{sender}> to {', '.join(to)} ...")
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
                        click.echo(f"      {ehlo}")
                        ehlo_shown = True
            except DeliveryError as exc:
                ok = False
                click.echo(f"      FAILED: {printable(exc)}")
                advice = diagnose(exc, settings, sender_setting=setting)
                click.echo("\n".join(f"      {printable(line)}" for line in advice.splitlines()))
                if isinstance(exc, _CONNECTION_LEVEL):
                    click.echo("      (not trying the second message: it would fail the same way)")
                    break
                continue
            except MailroomError as exc:
                ok = False
                click.echo(f"      FAILED: {printable(exc)}")
                continue
            where = f" ({result.reply})" if result.reply else ""
            # The relay's words: nothing in them may act on the terminal.
            click.echo(
                printable(f"      delivered to {result.location}{where}: {result.message_id}")
            )
            for recipient, error in result.refused.items():
                ok = False
                click.echo(printable(f"      refused for {recipient}: {error}"))
    finally:
        await transport.close()
    return ok


@main.command("send-test-email")
@click.argument("addresses", nargs=-1, required=True)
@config_option
@click.pass_context
def send_test_email(
    ctx: click.Context, addresses: tuple[str, ...], config_path: str | None
) -> None:
    """Send two test messages straight through the configured transport.

    One comes from DEFAULT_FROM_EMAIL, one from the noreply address. The settings files are
    read afresh, so this checks what a restarted server would use.
    """
    settings = cli_settings(ctx, config_path)
    with _capture_sink(settings) as sink:
        if not asyncio.run(_send_test_emails(settings, addresses, sink)):
            raise SystemExit(1)
    transport = settings.MAILROOM_TRANSPORT
    if transport is TransportName.SMTP:
        click.echo("Both test messages were accepted. Check the inbox (and the spam folder).")
        return
    # Nothing was sent anywhere: saying "check the inbox" here sends a new user looking for
    # mail that never left the machine.
    where = {
        TransportName.CONSOLE: "were printed above",
        TransportName.FILE: f"were written to {settings.EMAIL_FILE_PATH}",
        TransportName.CAPTURE: "were stored as captured mail in the outbox database "
        f"{display_url(settings.DATABASE_URL)}, where `mailroom serve` shows them "
        "(GET /api/v1/captured)",
    }.get(transport, "were thrown away")
    click.echo(
        # Both names: MAILROOM_TRANSPORT is the one to set, EMAIL_BACKEND the one an
        # existing (Django-style) settings file may already hold.
        f"Both test messages {where} (MAILROOM_TRANSPORT or EMAIL_BACKEND is {transport.value}, "
        f"from {settings.source_of('MAILROOM_TRANSPORT')}): nothing left this machine.\n"
        "To send for real, name your relay: set EMAIL_HOST (and EMAIL_PORT, EMAIL_HOST_USER, "
        "EMAIL_USE_TLS or EMAIL_USE_SSL; the password in the secrets file or "
        "EMAIL_HOST_PASSWORD), or one EMAIL_URL such as smtp://user@smtp.example.com:587?tls=true,"
        " then run this again."
    )
