"""``manage.py send_test_email ADDRESS...``: ``mailroom send-test-email`` with the project's
settings: two messages straight through the transport (recorded in the outbox, stream
``test``), what the relay said, and advice."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailroom.delivery.testmail import outcome_advice, send_test_emails, test_email_outbox
from mailroom.integrations.django.command_errors import as_command_errors, connecting_settings


def _printable(line: str) -> str:
    """The relay's words are among the lines: no control or bidi character may act on the
    terminal (``mailroom.cli.render.printable``'s rule; the CLI is a layer above this)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in line)


class Command(BaseCommand):
    help = "Send two test messages straight through Mailroom's transport."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addresses", nargs="+", help="Where to send them.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = connecting_settings()
        settings = config.settings
        to = tuple(options["addresses"])

        def say(line: str) -> None:
            self.stdout.write(_printable(line))

        with as_command_errors(config), test_email_outbox(settings) as where:
            result = asyncio.run(send_test_emails(settings, to, say, where))
        if not result.ok:
            raise CommandError("the test email was not delivered (see above)")
        self.stdout.write(outcome_advice(settings))
