"""``manage.py mailroom_worker``: ``mailroom worker`` with the project's settings (the same
options, ``--once`` included), and Mailroom's events sent as Django signals in this process
(see :mod:`mailroom.integrations.django.signals` and :mod:`~.events`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mailroom.config import Settings
from mailroom.delivery.processes import run_worker, run_worker_processes
from mailroom.errors import MailroomError
from mailroom.integrations.django.backend import current_settings
from mailroom.integrations.django.events import EventSignals


def _child(settings: Settings, concurrency: int | None, once: bool) -> None:
    """One of ``--processes``: a spawned interpreter without Django; it only delivers."""
    run_worker(settings, concurrency=concurrency, once=once, supervised=True)


class Command(BaseCommand):
    help = "Deliver the outbox: claim due messages, send them, record the outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, help="Connections (default setting).")
        parser.add_argument(
            "--processes", type=int, help="Worker processes side by side (WORKER_PROCESSES)."
        )
        parser.add_argument("--once", action="store_true", help="Deliver what is due, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = current_settings().settings
        concurrency: int | None = options["concurrency"]
        once: bool = options["once"]
        count: int = options["processes"] or settings.WORKER_PROCESSES
        if concurrency is not None and not 1 <= concurrency <= 1000:
            raise CommandError("--concurrency must be 1 to 1000")
        if not 1 <= count <= 256:
            raise CommandError("--processes must be 1 to 256")
        with EventSignals(settings):
            try:
                if count == 1:
                    name, stats = run_worker(settings, concurrency=concurrency, once=once)
                    self.stdout.write(
                        f"worker {name}: sent {stats.sent}, deferred {stats.deferred}, "
                        f"failed {stats.failed}, paused {stats.paused}, "
                        f"released {stats.released}, suppressed {stats.suppressed}"
                    )
                    return
                failed = run_worker_processes(
                    settings, count, concurrency=concurrency, once=once, child=_child
                )
            except MailroomError as exc:
                raise CommandError(str(exc)) from exc
        if failed:
            raise CommandError(f"{failed} of {count} worker processes ended with an error")
