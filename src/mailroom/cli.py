"""The ``mailroom`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from mailroom import __version__
from mailroom.config import SECRET_SETTINGS, SETTING_NAMES, Settings, load_settings
from mailroom.doctor import diagnose
from mailroom.errors import (
    AuthenticationError,
    DeliveryError,
    MailroomError,
    RelayUnreachableError,
    TLSError,
)
from mailroom.message import Message, build_envelope
from mailroom.transports import transport_from_settings

F = TypeVar("F", bound=Callable[..., Any])

# Failures that will hit every message the same way: after one, the second test is pointless.
_CONNECTION_LEVEL = (RelayUnreachableError, TLSError, AuthenticationError)


def _config_option(func: F) -> F:
    """``--config`` on a subcommand too, so ``mailroom send-test-email --config x`` works."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Settings file (TOML). Default: $MAILROOM_CONFIG, else ./mailroom.toml if present.",
    )(func)


def _settings(ctx: click.Context, config_path: str | None) -> Settings:
    path = config_path or ctx.obj.get("config_path")
    try:
        return load_settings(path)
    except MailroomError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_config_option
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(__version__, prog_name="mailroom")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Mailroom: outbound email for web applications."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


# -- send-test-email ---------------------------------------------------------------------


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
@_config_option
@click.pass_context
def send_test_email(
    ctx: click.Context, addresses: tuple[str, ...], config_path: str | None
) -> None:
    """Send two test messages straight through the configured transport.

    One comes from DEFAULT_FROM_EMAIL, one from the noreply address. The settings files are
    read afresh, so this checks what a restarted server would use.
    """
    settings = _settings(ctx, config_path)
    if not asyncio.run(_send_test_emails(settings, addresses)):
        raise SystemExit(1)
    click.echo("Both test messages were accepted. Check the inbox (and the spam folder).")


# -- config show -------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


def _shown_value(settings: Settings, name: str) -> Any:
    value = getattr(settings, name)
    if name in SECRET_SETTINGS:
        return "********" if value.get_secret_value() else "(not set)"
    if value is None:
        return None
    if hasattr(value, "value"):  # StrEnum
        return str(value.value)
    return str(value) if not isinstance(value, bool | int | float) else value


@config_group.command("show")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
@click.pass_context
def config_show(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """Print the resolved settings and where each value came from (password masked)."""
    settings = _settings(ctx, config_path)
    rows = [
        (name, _shown_value(settings, name), settings.source_of(name)) for name in SETTING_NAMES
    ]
    derived = [
        ("port in use", settings.port, "EMAIL_PORT, or implied by TLS/SSL"),
        (
            "noreply address",
            settings.noreply_address,
            "NOREPLY_EMAIL_ADDRESS or DEFAULT_FROM_EMAIL",
        ),
    ]
    if as_json:
        payload = {
            "settings": {name: {"value": value, "source": source} for name, value, source in rows},
            "warnings": list(settings.warnings),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(str(v)) for _, v, _ in rows + derived))
    for name, value, source in rows:
        shown = "(not set)" if value is None else str(value)
        click.echo(f"{name:<{width}}  {shown:<{value_width}}  {source}")
    click.echo()
    for label, value, source in derived:
        click.echo(f"{label:<{width}}  {value!s:<{value_width}}  {source}")
    if settings.warnings:
        click.echo()
        for warning in settings.warnings:
            click.echo(f"warning: {warning}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
