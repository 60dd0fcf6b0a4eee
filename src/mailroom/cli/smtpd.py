"""``mailroom smtpd``: the SMTP submission port (:mod:`mailroom.integrations.smtpd`).

It prints where it listens and what it asks of clients, then serves until SIGTERM or SIGINT,
which stop it in bounded time (``SMTPD_SHUTDOWN_GRACE`` for commits under way).
"""

from __future__ import annotations

import importlib.util
import ssl
import sys

import click

from mailroom.cli.base import CommandError, cli_settings, config_option, main
from mailroom.cli.render import database_shown, printable
from mailroom.cli.serve import _listen
from mailroom.config import Settings
from mailroom.errors import SettingsError
from mailroom.logs import attach_log_files
from mailroom.outbox.store import Outbox

__all__ = ["smtpd_command"]


@main.command("smtpd")
@click.option("--host", default=None, help="Address to listen on.  [default: SMTPD_HOST]")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on; 0 picks a free one (printed).  [default: SMTPD_PORT]",
)
@config_option
@click.pass_context
def smtpd_command(
    ctx: click.Context, *, host: str | None, port: int | None, config_path: str | None
) -> None:
    """Take mail over SMTP (STARTTLS, AUTH with an API key) into the outbox."""
    if importlib.util.find_spec("aiosmtpd") is None:
        raise CommandError("mailroom smtpd needs aiosmtpd: pip install 'mailroom[smtpd]'")
    # Imported here: aiosmtpd is an optional extra, and no other command needs it.
    from mailroom.integrations.smtpd import serve  # noqa: PLC0415
    from mailroom.integrations.smtpd.server import tls_context  # noqa: PLC0415

    settings = cli_settings(ctx, config_path)
    attach_log_files(settings)
    host = host if host is not None else settings.SMTPD_HOST
    port = port if port is not None else settings.SMTPD_PORT
    try:
        tls_context(settings)  # a certificate that cannot load stops it before it listens
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            "SMTPD_TLS_CERTFILE",
            f"the certificate (or SMTPD_TLS_KEYFILE) cannot be loaded: {exc}",
        ) from None
    outbox = Outbox(settings)
    try:
        outbox.ensure_schema()
        listener = _listen(host, port)
        address = listener.getsockname()
        result = serve(
            settings,
            outbox.engine,
            listener,
            on_listening=lambda: _print_start(settings, host, address[1]),
        )
    finally:
        outbox.dispose()
    if result.unanswered:
        click.echo(
            f"mailroom smtpd: {result.unanswered} commits were still under way when "
            "SMTPD_SHUTDOWN_GRACE ran out; their clients got no answer and will retry"
        )
    if result.refused:
        click.echo(
            f"mailroom smtpd: {result.refused} connections were refused with 421 over "
            "SMTPD_MAX_CONNECTIONS or SMTPD_MAX_CONNECTIONS_PER_CLIENT"
        )
    click.echo("mailroom smtpd: stopped")


def _print_start(settings: Settings, host: str, port: int) -> None:
    bare = host.strip("[]")
    shown = f"[{bare}]" if ":" in bare else bare
    click.echo(printable(f"mailroom smtpd: listening on {shown}:{port}"), nl=True)
    if settings.SMTPD_TLS_CERTFILE is not None:
        auth = "AUTH PLAIN/LOGIN (an API key as the password) after STARTTLS"
    else:
        auth = (
            "AUTH PLAIN/LOGIN (an API key as the password) from loopback only: no "
            "SMTPD_TLS_CERTFILE, so no STARTTLS"
        )
    click.echo(f"  auth: {auth}")
    trusted = ", ".join(settings.SMTPD_TRUSTED_NETWORKS) or "none"
    click.echo(printable(f"  without AUTH: {trusted} (SMTPD_TRUSTED_NETWORKS)"))
    click.echo(
        f"  connections: at most {settings.SMTPD_MAX_CONNECTIONS} "
        f"(SMTPD_MAX_CONNECTIONS), {settings.SMTPD_MAX_CONNECTIONS_PER_CLIENT} from one "
        "address outside the trusted networks (SMTPD_MAX_CONNECTIONS_PER_CLIENT)"
    )
    click.echo(printable(f"  stream: {settings.SMTPD_STREAM}"))
    click.echo(f"  data: {database_shown(settings.DATABASE_URL)}")
    click.echo("  deliver with `mailroom worker` (or `mailroom serve`)", nl=True)
    # Flushed: a supervisor (or a test) waits for the line above before it connects.
    sys.stdout.flush()
