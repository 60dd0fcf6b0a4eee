"""``manage.py mailroom_status``: counts per status, send rates and paused streams of the
outbox, as ``mailroom status``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from mailroom.integrations.django.command_errors import as_command_errors, connecting_settings
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.status import outbox_status


class Command(BaseCommand):
    help = "Show the outbox: counts per status, send rates, paused streams."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = connecting_settings()
        with as_command_errors(config):
            engine = create_outbox_engine(config.settings.DATABASE_URL, must_exist=True)
            try:
                database.check_schema(engine)
                state = outbox_status(engine)
            finally:
                engine.dispose()
        if options["json"]:
            self.stdout.write(json.dumps(state, indent=2))
            return
        counts = "  ".join(f"{name} {count}" for name, count in state["counts"].items())
        self.stdout.write(f"messages: {counts}")
        self.stdout.write(
            f"sent: {state['sent_last_minute']} in the last minute "
            f"({state['rate_per_second_last_minute']}/s), {state['sent_last_hour']} in the "
            "last hour"
        )
        for pause in state["paused_streams"]:
            self.stdout.write(
                f"paused: {pause['name']} until {pause['paused_until']}: {pause['pause_reason']}"
            )
