"""The Celery integration's pieces that need no broker: the Beat entry, the bounds' checks,
the task as Celery registers it, and the settings kept per process."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
from types import FrameType

import pytest
from billiard.pool import soft_timeout_sighandler
from celery import Celery

from mailroom.config import load_settings
from mailroom.integrations import celery as integration
from mailroom.integrations.celery import (
    DEFAULT_MAX_SECONDS,
    DRAIN_TASK,
    beat_schedule,
    drain_outbox,
    use_settings,
)


def test_the_default_beat_entry_drains_every_30_seconds_and_expires_with_its_tick() -> None:
    schedule = beat_schedule()
    assert schedule == {
        "mailroom-drain": {
            "task": "mailroom.drain",
            "schedule": 30.0,
            "kwargs": {"max_seconds": DEFAULT_MAX_SECONDS},
            "options": {"expires": 30.0},
        }
    }
    json.dumps(schedule)  # Beat's entries travel as JSON


def test_a_short_interval_bounds_each_drain_by_it() -> None:
    entry = beat_schedule(1.0, max_messages=500, entry="drain", queue="mail")["drain"]
    assert entry["kwargs"] == {"max_seconds": 1.0, "max_messages": 500}
    assert entry["options"] == {"expires": 1.0, "queue": "mail"}


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"every": 0}, "every"),
        ({"every": math.inf}, "every"),
        ({"max_seconds": -1.0}, "max_seconds"),
        ({"max_seconds": math.nan}, "max_seconds"),
        ({"max_messages": 0}, "max_messages"),
    ],
)
def test_a_bad_bound_is_refused_by_name(kwargs: dict[str, float], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named} must be"):
        beat_schedule(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_messages", [2.5, True, "10"])
def test_max_messages_must_be_a_whole_number(max_messages: object) -> None:
    settings = load_settings(environ={"DATABASE_URL": "sqlite:///never-made.db"})
    with pytest.raises(ValueError, match=r"^max_messages must be a whole number"):
        drain_outbox(settings, max_messages=max_messages)  # type: ignore[arg-type]


def test_max_seconds_must_be_a_number() -> None:
    settings = load_settings(environ={"DATABASE_URL": "sqlite:///never-made.db"})
    with pytest.raises(TypeError, match=r"^max_seconds must be a number"):
        drain_outbox(settings, max_seconds="soon")  # type: ignore[arg-type]


def test_the_task_joins_any_app_under_its_name_with_its_time_limits() -> None:
    app = Celery("some_project", set_as_current=False)
    app.finalize()
    task = app.tasks[DRAIN_TASK]
    assert task.soft_time_limit == integration.SOFT_TIME_LIMIT
    assert task.time_limit == integration.TIME_LIMIT
    # Room for a drain's own bound, the sends' grace and the last writes before the backstop.
    assert integration.SOFT_TIME_LIMIT > DEFAULT_MAX_SECONDS + 10 + 10
    assert integration.TIME_LIMIT > integration.SOFT_TIME_LIMIT


def test_settings_are_read_once_per_process_and_can_be_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker outside Django: Django not imported (an earlier test of the session may have
    # set a Django project up, whose settings a drain would take; see the integration test).
    monkeypatch.delitem(sys.modules, "django.conf", raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///first.db")
    use_settings(None)
    try:
        first = integration._worker_settings()
        monkeypatch.setenv("DATABASE_URL", "sqlite:///second.db")
        assert integration._worker_settings() is first  # kept, not read again
        assert first.DATABASE_URL == "sqlite:///first.db"
        given = load_settings(environ={"DATABASE_URL": "sqlite:///given.db"})
        use_settings(given)
        assert integration._worker_settings() is given
    finally:
        use_settings(None)


def test_sigusr1_is_taken_over_only_where_it_is_the_soft_time_limit() -> None:
    """In a prefork child (billiard's handler in place) a drain takes SIGUSR1 over; in the
    solo pool it is Celery's "dump the stacks", elsewhere the application's: left alone."""

    def applications_own(signum: int, frame: FrameType | None) -> None:
        """Stands for Celery's stack dump or an application's SIGUSR1."""

    previous = signal.signal(signal.SIGUSR1, applications_own)
    try:
        assert integration._prefork_soft_time_limit_handler() is None
        signal.signal(signal.SIGUSR1, soft_timeout_sighandler)
        assert integration._prefork_soft_time_limit_handler() is soft_timeout_sighandler
        # Signals reach the main thread only: a drain in another thread leaves them be.
        found: list[object] = []
        other = threading.Thread(
            target=lambda: found.append(integration._prefork_soft_time_limit_handler())
        )
        other.start()
        other.join(5)
        assert found == [None]
    finally:
        signal.signal(signal.SIGUSR1, previous)
