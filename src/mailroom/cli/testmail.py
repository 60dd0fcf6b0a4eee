"""``mailroom send-test-email``: two messages straight through the transport (recorded in the
outbox, in the ``test`` stream), and advice.

The test itself is :mod:`mailroom.delivery.testmail`'s, shared with the admin status page;
this prints its report line by line as it goes.
"""

from __future__ import annotations

import asyncio

import click

from mailroom.cli.base import cli_settings, config_option, main
from mailroom.cli.render import printable
from mailroom.delivery.testmail import outcome_advice, send_test_emails, test_email_outbox


def _say(line: str) -> None:
    # Everything goes to stdout, failures included: the report is this command's output, and
    # one stream keeps it in order when piped; the exit status says whether it worked. The
    # relay's words are among the lines: nothing in them may act on the terminal.
    click.echo(printable(line))


@main.command("send-test-email")
@click.argument("addresses", nargs=-1, required=True)
@config_option
@click.pass_context
def send_test_email(
    ctx: click.Context, addresses: tuple[str, ...], config_path: str | None
) -> None:
    """Send two test messages straight through the configured transport.

    One comes from DEFAULT_FROM_EMAIL, one from the noreply address. Both are recorded in the
    outbox (stream "test") and sent at once, never retried. The settings files are read
    afresh, so this checks what a restarted server would use.
    """
    settings = cli_settings(ctx, config_path)
    with test_email_outbox(settings) as where:
        if not asyncio.run(send_test_emails(settings, addresses, _say, where)).ok:
            raise SystemExit(1)
    click.echo(outcome_advice(settings))
