"""The Celery app the Celery tests run, as a project's ``proj/celery.py`` would be: a Redis
broker, Mailroom's drain task included, and Mailroom's Beat entry.

Read by ``celery -A support.celery_app worker|beat`` in processes of their own; the test
names its broker (a Redis database of the tests' own), its queue (unique to the test, so
tests never take each other's tasks) and the Beat interval in the environment.
"""

from __future__ import annotations

import os
import threading

from celery import Celery

from mailroom.integrations.celery import beat_schedule

BROKER_URL = os.environ["TESTAPP_BROKER_URL"]
QUEUE = os.environ["TESTAPP_QUEUE"]

app = Celery("mailroom_tests", broker=BROKER_URL, include=["mailroom.integrations.celery"])
app.conf.update(
    # Results come back through Redis too, so a test can read a drain's counts.
    result_backend=BROKER_URL,
    result_expires=600,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    # One task at a time per process: a drain is long, and a prefetched one would wait
    # behind it instead of running in the other process.
    worker_prefetch_multiplier=1,
    # How long a task taken by a worker that died unacknowledged waits before the broker
    # gives it to another (Redis's default is an hour).
    # kombu looks for such tasks every unacked_restore_interval x unacked_restore_throttle
    # seconds (100 by default): every second here.
    broker_transport_options={
        "visibility_timeout": float(os.environ.get("TESTAPP_VISIBILITY_TIMEOUT", "3600")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    beat_schedule=beat_schedule(
        every=float(os.environ.get("TESTAPP_DRAIN_EVERY", "30")),
        max_seconds=float(os.environ.get("TESTAPP_DRAIN_MAX_SECONDS", "25")),
        entry=f"mailroom-drain-{QUEUE}",
        queue=QUEUE,
    ),
)


@app.task(name="tests.thread_names")
def thread_names() -> list[str]:
    """The threads alive in the process that runs it: with ``--concurrency 1``, the prefork
    child that ran the drains before (a drain must leave no thread of its own behind)."""
    return sorted(thread.name for thread in threading.enumerate())
