"""``manage.py mailroom_migrate``: create or upgrade the outbox tables (Mailroom's Alembic
chain, as ``mailroom db upgrade``) in the database the settings name: the alias's
(``MAILROOM["DATABASE"]``) or ``MAILROOM["DATABASE_URL"]``.

In the shared mode ``manage.py migrate`` does the same (the ``mailroom`` app's migration);
this runs the chain on a connection of its own, so run it outside another transaction on the
same SQLite file (it would wait for that one's lock).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mailroom.integrations.django.command_errors import as_command_errors, connecting_settings
from mailroom.outbox.database import create_outbox_engine, upgrade


class Command(BaseCommand):
    help = "Create or upgrade Mailroom's outbox tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--revision", default="head", help="The Alembic revision to reach (default head)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        config = connecting_settings()
        with as_command_errors(config):
            engine = create_outbox_engine(config.settings.DATABASE_URL)
            try:
                before, after = upgrade(engine, options["revision"])
            finally:
                engine.dispose()
        if before == after:
            self.stdout.write(f"the outbox is at revision {after}; nothing to do")
        else:
            self.stdout.write(f"the outbox went from revision {before or '(none)'} to {after}")
