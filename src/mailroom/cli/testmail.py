"""``mailroom send-test-email``: two messages straight through the transport, and advice."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import click

from mailroom.cli.base import cli_settings, config_option, main
from mailroom.config import Settings
from mailroom.doctor import diagnose
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
from mailroom.transports import transport_from_settings

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


async def _send_test_emails(settings: Settings, to: tuple[str, ...]) -> bool:
    # Everything goes to stdout, failures included: the report is this command's output, and
    # one stream keeps it in order when piped; the exit status says whether it worked.
    transport = transport_from_settings(settings)
    click.echo(f"Transport: {transport.describe()}")
    ok = True
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
                result = await transport.send(envelope)
            except DeliveryError as exc:
                ok = False
                click.echo(f"      FAILED: {exc}")
                advice = diagnose(exc, settings, sender_setting=setting)
                click.echo("\n".join(f"      {line}" for line in advice.splitlines()))
                if isinstance(exc, _CONNECTION_LEVEL):
                    click.echo("      (not trying the second message: it would fail the same way)")
                    break
                continue
            except MailroomError as exc:
                ok = False
                click.echo(f"      FAILED: {exc}")
                continue
            where = f" ({result.reply})" if result.reply else ""
            click.echo(f"      delivered to {result.location}{where}: {result.message_id}")
            for recipient, error in result.refused.items():
                ok = False
                click.echo(f"      refused for {recipient}: {error}")
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
    if not asyncio.run(_send_test_emails(settings, addresses)):
        raise SystemExit(1)
    click.echo("Both test messages were accepted. Check the inbox (and the spam folder).")
