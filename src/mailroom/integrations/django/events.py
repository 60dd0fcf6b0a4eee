"""Mailroom's events as Django signals in the worker's process (``manage.py
mailroom_worker``).

The worker records what happens (``sent``, ``deferred``, ``failed``...) in the event log in
the transaction that records the attempt; this reads the log after it, every
``_POLL_SECONDS`` and once more when the worker ends, and sends each new event's signal
(:data:`mailroom.integrations.django.signals.SIGNALS`). Receivers run in a thread of their own,
never in the worker's send path, so a slow receiver cannot slow delivery.

What a receiver gets is what is committed: an event is sent once it is in the log, once in
all: the place reached in the log is a row of the outbox (``mailroom_signal_cursors``,
:mod:`mailroom.outbox.signal_cursor_queries`), moved in the transaction that reads the events
it passes. Two ``mailroom_worker`` commands take turns and each event goes to one of them; one
that starts sends what was recorded while none ran (the Celery drain's, ``mailroom worker``'s
events). The very first run starts at the newest event. At most once: a process that dies
between reading a batch and sending its signals loses those signals. On PostgreSQL two
workers' transactions may commit in the other order than their ids were drawn; an event
committed that late behind one already read is not sent.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from django.db import connections
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from mailroom.config import Settings
from mailroom.errors import MailroomError
from mailroom.integrations.django.signals import SIGNALS
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.signal_cursor_queries import claim_events, start_cursor
from mailroom.outbox.vocabulary import EventType

__all__ = ["EventSignals"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 1.0
_BATCH = 1000
_STOP_WAIT = 10.0  # seconds the end waits for the last signals
CURSOR = "django-signals"
"""The cursor's name in ``mailroom_signal_cursors``."""


class EventSignals:
    """``with EventSignals(settings): run the worker`` — signals for every event recorded
    meanwhile (``queued`` aside: the backend sends that one)."""

    def __init__(self, settings: Settings, *, poll_seconds: float = _POLL_SECONDS) -> None:
        # must_exist: the worker reports a missing outbox; this must not create an empty one.
        self._engine: Engine = create_outbox_engine(
            settings.DATABASE_URL, durable=False, must_exist=True
        )
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._started = False  # the cursor row is known to be there
        self._thread = threading.Thread(target=self._run, name="mailroom-signals", daemon=True)

    def __enter__(self) -> EventSignals:
        try:
            with self._engine.begin() as connection:
                start_cursor(connection, CURSOR)
            self._started = True
        except (SQLAlchemyError, MailroomError):
            # The worker command checked the outbox first; a fault now is passing, and the
            # thread's reads retry (and say so).
            logger.warning("could not start the signal cursor", exc_info=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(_STOP_WAIT)
        self._engine.dispose()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._poll_seconds):
                self._send_new()
            self._send_new()  # what the worker recorded last
        finally:
            connections.close_all()  # the receivers' Django connections, of this thread

    def _send_new(self) -> None:
        while True:
            try:
                with self._engine.begin() as connection:
                    if not self._started:
                        start_cursor(connection, CURSOR)
                    rows = claim_events(connection, CURSOR, _BATCH)
                self._started = True
            except Exception:  # the database is the worker's to report; try again later
                logger.warning("could not read the event log for signals", exc_info=True)
                return
            for row in rows:
                self._send(row.type, row.message_pk, row.recipient, row.at, row.detail)
            if len(rows) < _BATCH:
                return

    def _send(
        self, type_: str, message_pk: int | None, recipient: str, at: float, detail: Any
    ) -> None:
        signal = SIGNALS.get(type_)
        if signal is None or type_ == EventType.QUEUED.value:
            return
        # A failing receiver is logged and does not stop the others or the worker.
        for receiver, result in signal.send_robust(
            EventSignals, message_pk=message_pk, recipient=recipient, at=at, detail=detail
        ):
            if isinstance(result, Exception):
                logger.error(
                    "a receiver of the %s signal failed: %r", type_, receiver, exc_info=result
                )
