"""Mailroom's events as Django signals in the worker's process (``manage.py
mailroom_worker``).

The worker records what happens (``sent``, ``deferred``, ``failed``...) in the event log in
the transaction that records the attempt; this reads the log after it, every
``_POLL_SECONDS`` and once more when the worker ends, and sends each new event's signal
(:data:`mailroom.integrations.django.signals.SIGNALS`). Receivers run in a thread of their own,
never in the worker's send path, so a slow receiver cannot slow delivery.

What a receiver gets is what is committed: an event is sent once it is in the log, at most
once per command run (events from before the run are not sent again). On PostgreSQL two
workers' transactions may commit in the other order than their ids were drawn; an event
committed that late behind one already read is not sent.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any

from django.db import connections
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from mailroom.config import Settings
from mailroom.integrations.django.signals import SIGNALS
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import events
from mailroom.outbox.vocabulary import EventType

__all__ = ["EventSignals"]

logger = logging.getLogger(__name__)

_POLL_SECONDS = 1.0
_BATCH = 1000
_STOP_WAIT = 10.0  # seconds the end waits for the last signals


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
        self._last_id = 0
        self._thread = threading.Thread(target=self._run, name="mailroom-signals", daemon=True)

    def __enter__(self) -> EventSignals:
        try:
            with self._engine.connect() as connection:
                self._last_id = connection.scalar(select(func.max(events.c.id))) or 0
        except SQLAlchemyError:
            # No event log yet (the worker says what to run); no event from before this run
            # can be in one that does not exist.
            logger.warning("could not read the event log; signals start from its beginning")
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
                with self._engine.connect() as connection:
                    rows = connection.execute(
                        select(
                            events.c.id,
                            events.c.message_pk,
                            events.c.recipient,
                            events.c.type,
                            events.c.at,
                            events.c.detail,
                        )
                        .where(events.c.id > self._last_id)
                        .order_by(events.c.id)
                        .limit(_BATCH)
                    ).all()
            except Exception:  # the database is the worker's to report; try again later
                logger.warning("could not read the event log for signals", exc_info=True)
                return
            for row in rows:
                self._last_id = row.id
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
