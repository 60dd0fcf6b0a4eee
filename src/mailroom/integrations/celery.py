"""Celery: the ``mailroom.drain`` task, which delivers what is due, for Celery Beat to run.

Install with ``pip install 'mailroom[celery]'``. The task is a ``shared_task`` (as
django-post_office's are), so it joins whatever Celery app the worker runs once this module is
imported: name it in the app's ``include`` (or import it where the app is made)::

    app = Celery("proj", broker="redis://127.0.0.1:6379/0",
                 include=["mailroom.integrations.celery"])
    app.conf.beat_schedule = beat_schedule()  # mailroom.drain every 30 s

One drain is one run of Mailroom's own worker in ``--once`` mode (:class:`~mailroom.delivery.
worker.Worker`): it claims due messages under a lease, sends them, records the outcomes and
returns what it did as a JSON-serialisable dict. Drains may overlap with each other and with
``mailroom worker`` processes: a claim is exclusive (on SQLite one writer transaction,
``BEGIN IMMEDIATE``; on PostgreSQL ``FOR UPDATE SKIP LOCKED``), so two drains never hold the
same message, and one that finds everything claimed returns at once.

A drain is bounded: after ``max_seconds`` (or once ``max_messages`` are dealt with) it stops
claiming, lets the sends in flight finish (``WORKER_SHUTDOWN_GRACE``), gives back what it had
claimed but not sent, and returns; the next Beat tick goes on. Celery's ``soft_time_limit`` and
``time_limit`` are only the backstop for a drain that cannot stop (a hung database).

Settings are Mailroom's own (:func:`mailroom.config.load_settings`: ``mailroom.toml`` or
``$MAILROOM_CONFIG``, the secrets file, the environment), read by the first drain of each
worker process and kept for the next ones — never at import. An app that builds its settings
in code hands them over with :func:`use_settings`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import socket
import threading
import time
from secrets import token_hex
from typing import Any, Literal, TypedDict

try:
    from celery import shared_task
except ImportError as exc:  # an optional extra: say which
    raise ImportError(
        "mailroom.integrations.celery needs Celery: pip install 'mailroom[celery]'"
    ) from exc

from mailroom.config import Settings, load_settings
from mailroom.delivery import loop
from mailroom.delivery.worker import Worker, WorkerStats

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DRAIN_TASK",
    "DrainResult",
    "beat_schedule",
    "drain",
    "drain_outbox",
    "use_settings",
]

DRAIN_TASK = "mailroom.drain"
"""The task's name: what a Beat entry or ``send_task`` names."""

DEFAULT_MAX_SECONDS = 25.0
"""How long one drain claims by default: less than Beat's 30 s, so drains rarely overlap and a
Celery worker's warm shutdown waits no longer than this plus ``WORKER_SHUTDOWN_GRACE``."""

# The backstops. A drain ends by itself after max_seconds + WORKER_SHUTDOWN_GRACE (10 s) +
# the recorder's last writes (10 s) at the most; these only end one that cannot (a database
# that stopped answering). The soft limit raises SoftTimeLimitExceeded inside the drain: what
# it had claimed keeps its lease and is sent again when WORKER_LEASE_SECONDS runs out.
SOFT_TIME_LIMIT = 120
TIME_LIMIT = 150

_CHECK_EVERY = 0.05  # seconds between looks at the count, with max_messages

Ended = Literal["drained", "max_seconds", "max_messages"]


class DrainResult(TypedDict):
    """What one drain did (the task's return value; JSON-serialisable)."""

    worker: str
    """The worker's name, as the attempts log records it."""
    sent: int
    deferred: int
    failed: int
    paused: int
    released: int
    """Claimed but given back unsent, when a bound stopped the drain."""
    suppressed: int
    possible_duplicates: int
    seconds: float
    ended: Ended
    """``drained`` (nothing due was left), ``max_seconds`` or ``max_messages``."""


# -- settings: once per process, never at import ------------------------------------------

_settings: Settings | None = None
_settings_lock = threading.Lock()


def use_settings(settings: Settings | None) -> None:
    """Give the drains of this process these settings instead of reading them (``None``:
    read them again on the next drain)."""
    global _settings  # noqa: PLW0603 - the process's settings, set once
    with _settings_lock:
        _settings = settings


def _worker_settings() -> Settings:
    global _settings  # noqa: PLW0603 - the process's settings, read once
    with _settings_lock:
        if _settings is None:
            # A bad setting raises SettingsError naming it; nothing is kept, so the next
            # drain reads the settings again once they are fixed.
            _settings = load_settings()
        return _settings


# -- the drain ------------------------------------------------------------------------------


def drain_outbox(
    settings: Settings,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_messages: int | None = None,
) -> DrainResult:
    """Deliver what is due now, in this thread, and return what was done; stop claiming after
    ``max_seconds`` or once ``max_messages`` are dealt with (``None``: no such bound)."""
    _check_bounds(max_seconds, max_messages)
    started = time.monotonic()
    # Named as a drain, so the attempts log tells its sends from those of `mailroom worker`.
    worker = Worker(settings, once=True, name=f"{socket.gethostname()}:drain-{token_hex(3)}")
    ended, stats = loop.run(_run(worker, max_seconds, max_messages), settings.WORKER_EVENT_LOOP)
    counts = dataclasses.asdict(stats)
    return DrainResult(
        worker=worker.name,
        sent=counts["sent"],
        deferred=counts["deferred"],
        failed=counts["failed"],
        paused=counts["paused"],
        released=counts["released"],
        suppressed=counts["suppressed"],
        possible_duplicates=counts["possible_duplicates"],
        seconds=round(time.monotonic() - started, 3),
        ended=ended,
    )


def _check_bounds(max_seconds: float, max_messages: int | None) -> None:
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float):
        raise TypeError(f"max_seconds must be a number of seconds, not {max_seconds!r}")
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number of seconds, not {max_seconds}")
    if max_messages is not None and (
        isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages < 1
    ):
        raise ValueError(f"max_messages must be a whole number of at least 1, not {max_messages!r}")


def _dealt_with(stats: WorkerStats) -> int:
    """Messages whose outcome is decided (given back ones are not: they are still due)."""
    return stats.sent + stats.deferred + stats.failed + stats.paused + stats.suppressed


async def _run(
    worker: Worker, max_seconds: float, max_messages: int | None
) -> tuple[Ended, WorkerStats]:
    ended: list[Ended] = []

    def stop(reason: Ended) -> None:
        # Once: a second stop() would cut the sends in flight short of their grace.
        if not ended:
            ended.append(reason)
            worker.stop()

    async def count_messages(limit: int) -> None:
        while _dealt_with(worker.stats) < limit:
            await asyncio.sleep(_CHECK_EVERY)
        stop("max_messages")

    timer = asyncio.get_running_loop().call_later(max_seconds, stop, "max_seconds")
    counter = asyncio.create_task(count_messages(max_messages)) if max_messages else None
    try:
        stats = await worker.run()
    finally:
        timer.cancel()
        if counter is not None:
            counter.cancel()
    return (ended[0] if ended else "drained"), stats


@shared_task(name=DRAIN_TASK, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def drain(max_seconds: float = DEFAULT_MAX_SECONDS, max_messages: int | None = None) -> DrainResult:
    """Deliver what is due (Mailroom's worker, once), for at most ``max_seconds`` of claiming
    or ``max_messages`` messages; return the counts. Safe to overlap with itself and with
    ``mailroom worker``."""
    return drain_outbox(_worker_settings(), max_seconds=max_seconds, max_messages=max_messages)


def beat_schedule(
    every: float = 30.0,
    *,
    max_seconds: float | None = None,
    max_messages: int | None = None,
    entry: str = "mailroom-drain",
    queue: str | None = None,
) -> dict[str, dict[str, Any]]:
    """A Beat schedule with one entry: :data:`DRAIN_TASK` every ``every`` seconds, for
    ``app.conf.beat_schedule`` (merge it with your own entries).

    Each drain expires after ``every`` seconds: when the workers were down, Beat's ticks do
    not pile up into a burst of drains when they come back; the next tick drains anyway.
    ``max_seconds`` defaults to :data:`DEFAULT_MAX_SECONDS`, but never beyond ``every``.
    """
    if not (math.isfinite(every) and every > 0):
        raise ValueError(f"every must be a positive number of seconds, not {every}")
    kwargs: dict[str, Any] = {
        "max_seconds": max_seconds if max_seconds is not None else min(DEFAULT_MAX_SECONDS, every)
    }
    if max_messages is not None:
        kwargs["max_messages"] = max_messages
    _check_bounds(kwargs["max_seconds"], max_messages)
    options: dict[str, Any] = {"expires": every}
    if queue is not None:
        options["queue"] = queue
    return {entry: {"task": DRAIN_TASK, "schedule": every, "kwargs": kwargs, "options": options}}
