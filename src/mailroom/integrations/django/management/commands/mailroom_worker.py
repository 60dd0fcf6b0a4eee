"""``manage.py mailroom_worker``: ``mailroom worker`` with the project's settings (the same
options, ``--once`` included), and Mailroom's events sent as Django signals in this process
(see :mod:`mailroom.integrations.django.signals` and :mod:`~.events`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailroom.campaigns.runner import worker_companions
from mailroom.config import Settings
from mailroom.delivery.processes import run_worker, run_worker_processes
from mailroom.integrations.django.command_errors import as_command_errors, connecting_settings
from mailroom.integrations.django.events import EventSignals
from mailroom.outbox.database import adopt_legacy_version, check_schema, create_outbox_engine


def _child(settings: Settings, concurrency: int | None, once: bool) -> None:
    """One of ``--processes``: a spawned interpreter without Django; it only delivers."""
    run_worker(
        settings,
        concurrency=concurrency,
        once=once,
        supervised=True,
        companions=worker_companions,
    )


def _check_outbox(settings: Settings) -> None:
    engine = create_outbox_engine(settings.DATABASE_URL, durable=False, must_exist=True)
    try:
        adopt_legacy_version(engine)
        check_schema(engine)
    finally:
        engine.dispose()


class Command(BaseCommand):
    help = "Deliver the outbox: claim due messages, send them, record the outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, help="Connections (default setting).")
        parser.add_argument(
            "--processes", type=int, help="Worker processes side by side (WORKER_PROCESSES)."
        )
        parser.add_argument("--once", action="store_true", help="Deliver what is due, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = connecting_settings()
        settings = config.settings
        concurrency: int | None = options["concurrency"]
        once: bool = options["once"]
        count: int = options["processes"] or settings.WORKER_PROCESSES
        if concurrency is not None and not 1 <= concurrency <= 1000:
            raise CommandError("--concurrency must be 1 to 1000")
        if not 1 <= count <= 256:
            raise CommandError("--processes must be 1 to 256")
        with as_command_errors(config):
            # Before the signals' thread starts reading it: a missing or outdated outbox is
            # one line naming what to run, not that thread's warnings.
            _check_outbox(settings)
        # EventSignals opens the outbox too: its errors are the command's as well.
        with as_command_errors(config), EventSignals(settings):
            if count == 1:
                name, stats = run_worker(
                    settings, concurrency=concurrency, once=once, companions=worker_companions
                )
                self.stdout.write(
                    f"worker {name}: sent {stats.sent}, deferred {stats.deferred}, "
                    f"failed {stats.failed}, paused {stats.paused}, "
                    f"released {stats.released}, suppressed {stats.suppressed}"
                )
                return
            failed = run_worker_processes(
                settings, count, concurrency=concurrency, once=once, child=_child
            )
        if failed:
            raise CommandError(f"{failed} of {count} worker processes ended with an error")
