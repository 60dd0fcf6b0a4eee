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
``time_limit`` are only the backstop for a drain that goes on too long (a relay or database
that hangs). In a prefork pool's child the soft limit stops the drain the same graceful way
(``ended: "soft_time_limit"``); only the hard limit kills the process, and what the drain had
claimed then keeps its lease until ``WORKER_LEASE_SECONDS`` runs out.

Settings, in this order: those handed over with :func:`use_settings`; in a Django project
that installs ``mailroom.integrations.django``, Django's own (as that integration reads them,
following ``override_settings``), never a second file; otherwise Mailroom's own
(:func:`mailroom.config.load_settings`: ``mailroom.toml`` or ``$MAILROOM_CONFIG``, the secrets
file, the environment), read by the first drain of each worker process and kept for the next
ones. Never at import.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from secrets import token_hex
from types import FrameType
from typing import Any, Literal, TypedDict

try:
    # Celery's process pool, billiard, comes with Celery: its SIGUSR1 is the soft time limit.
    from billiard.pool import SIG_SOFT_TIMEOUT, soft_timeout_sighandler
    from celery import shared_task
except ImportError as exc:  # an optional extra: say which
    raise ImportError(
        "mailroom.integrations.celery needs Celery: pip install 'mailroom[celery]'"
    ) from exc

from mailroom.config import Settings, load_settings
from mailroom.delivery import loop
from mailroom.delivery.worker import Worker, WorkerStats
from mailroom.integrations import celery_campaigns

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DRAIN_TASK",
    "DrainResult",
    "beat_schedule",
    "celery_campaigns",
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
# the recorder's last writes (10 s) at the most; these only end one that does not. The soft
# limit stops the drain as max_seconds does (see _soft_time_limit_stops); the hard one kills
# the pool's child, and what the drain had claimed keeps its lease until it runs out.
SOFT_TIME_LIMIT = 120
TIME_LIMIT = 150

_CHECK_EVERY = 0.05  # seconds between looks at the count, with max_messages

_DJANGO_APP = "mailroom.integrations.django"

logger = logging.getLogger(__name__)

Ended = Literal["drained", "max_seconds", "max_messages", "soft_time_limit"]


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
    """``drained`` (nothing due was left), ``max_seconds``, ``max_messages`` or
    ``soft_time_limit`` (Celery's, in a prefork pool)."""


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
            from_django = _django_settings()
            if from_django is not None:
                # Not kept here: the Django integration keeps them, and reads them again
                # after a change (override_settings).
                return from_django
            # A bad setting raises SettingsError naming it; nothing is kept, so the next
            # drain reads the settings again once they are fixed.
            _settings = load_settings()
        return _settings


def _django_settings() -> Settings | None:
    """Mailroom's settings from Django's, when this worker runs in a Django project (Celery's
    Django fixup has configured it) that installs Mailroom's Django app; else ``None``."""
    if "django.conf" not in sys.modules:  # Django never imported: no Django project here
        return None
    from django.conf import settings as django_settings  # noqa: PLC0415 - only in Django

    if not django_settings.configured:
        return None
    installed = getattr(django_settings, "INSTALLED_APPS", ())
    # The app's module, or one of its AppConfig classes ("mailroom.integrations.django.apps…").
    if not any(app == _DJANGO_APP or str(app).startswith(f"{_DJANGO_APP}.") for app in installed):
        return None
    from mailroom.integrations.django.backend import current_settings  # noqa: PLC0415

    return current_settings().settings


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

    def soft_time_limit() -> None:
        if ended:
            # Already stopping and still not done by Celery's backstop: end the sends'
            # grace now (a second stop); what they held is given back all the same.
            logger.warning("drain %s: Celery's soft time limit; ending it now", worker.name)
            worker.stop()
            return
        logger.warning(
            "drain %s: Celery's soft time limit; stopping it as at max_seconds", worker.name
        )
        stop("soft_time_limit")

    async def count_messages(limit: int) -> None:
        while _dealt_with(worker.stats) < limit:
            await asyncio.sleep(_CHECK_EVERY)
        stop("max_messages")

    timer = asyncio.get_running_loop().call_later(max_seconds, stop, "max_seconds")
    counter = asyncio.create_task(count_messages(max_messages)) if max_messages else None
    try:
        with _soft_time_limit_stops(soft_time_limit):
            stats = await worker.run()
    finally:
        timer.cancel()
        if counter is not None:
            counter.cancel()
    return (ended[0] if ended else "drained"), stats


@contextlib.contextmanager
def _soft_time_limit_stops(stop: Callable[[], None]) -> Iterator[None]:
    """While the drain runs, Celery's soft time limit calls ``stop`` in the event loop.

    In a prefork pool's child the soft limit is SIGUSR1, whose handler (billiard's) raises
    SoftTimeLimitExceeded wherever the main thread is. In an event loop that is mostly inside
    one of the loop's callbacks, which logs it and runs on (uvloop's signal callback, asyncio's
    future callbacks); otherwise it tears the loop down, leaving what the drain had claimed
    leased. So for the drain's duration the signal only schedules ``stop`` in the loop, and
    billiard's handler is put back afterwards. ``signal.signal`` rather than the loop's
    ``add_signal_handler``: removing that resets the signal to its default (which kills the
    process) before the old handler could be put back.

    Only in a prefork pool's child (billiard's handler in place, main thread): in the
    ``solo`` pool SIGUSR1 is Celery's "dump the threads' stacks", and elsewhere the
    application's own.
    """
    previous_handler = _prefork_soft_time_limit_handler()
    if previous_handler is None:
        yield
        return
    running_loop = asyncio.get_running_loop()

    def on_soft_time_limit(signum: int, frame: FrameType | None) -> None:
        # A Python signal handler runs between two bytecodes of the main thread, which may be
        # in the middle of the loop's own code: hand the stop to the loop rather than run it.
        running_loop.call_soon_threadsafe(stop)

    signal.signal(SIG_SOFT_TIMEOUT, on_soft_time_limit)
    try:
        yield
    finally:
        signal.signal(SIG_SOFT_TIMEOUT, previous_handler)


def _prefork_soft_time_limit_handler() -> Callable[[int, FrameType | None], Any] | None:
    """Billiard's soft time limit handler, if this is the main thread of a prefork pool's
    child where SIGUSR1 is the soft limit; else ``None``."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if (
        SIG_SOFT_TIMEOUT is None
        or signal.getsignal(SIG_SOFT_TIMEOUT) is not soft_timeout_sighandler
    ):
        return None
    return soft_timeout_sighandler


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


# The campaign tasks (CAMPAIGN_FANOUT = "celery") register with the same import, and read the
# settings as the drain does.
celery_campaigns.read_settings_with(_worker_settings)
