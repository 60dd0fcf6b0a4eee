"""The tracking hits' writer: hits are buffered in memory and written in batches.

A pixel answers in microseconds and never waits on the database: the endpoint hands its hit
to :meth:`EventRecorder.add` (an append under a lock) and returns the image. A thread writes
what has gathered every :data:`FLUSH_INTERVAL` seconds, or as soon as :data:`BATCH_SIZE`
hits wait, each batch in one transaction: one query resolves the batch's Message-IDs to
their outbox rows (pk, and delivery time for "seconds since delivery"), the hits are
labelled (:func:`~mailroom.tracking.labels.label_hit`) and written with
:func:`~mailroom.outbox.event_queries.record_events`.

What can be lost: the hits of the last second or so before the process dies without a
shutdown (a crash, SIGKILL, power). A graceful shutdown flushes what is buffered
(:meth:`EventRecorder.close`, called from the app's lifespan). While the database is
unreachable, hits wait in memory and are written once it answers again; beyond
:data:`MAX_PENDING` the oldest are dropped, with a warning, rather than the process
growing without bound.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from mailroom.config import TrackingIP
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.vocabulary import EventType
from mailroom.tracking.labels import HitKind, keep_ip, label_hit
from mailroom.tracking.queries import MessageRef, find_messages, message_for
from mailroom.tracking.tokens import HitClaim

__all__ = ["BATCH_SIZE", "FLUSH_INTERVAL", "MAX_PENDING", "EventRecorder", "Hit"]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
"""Seconds between writes: at most this much of hits is lost if the process dies."""
BATCH_SIZE = 500
"""Hits written per transaction; this many waiting wakes the writer early."""
MAX_PENDING = 100_000
"""Hits kept in memory while the database does not answer; the oldest go first beyond."""
_USER_AGENT_MAX = 512  # kept of a user agent; a real one is far shorter


@dataclass(frozen=True, slots=True)
class Hit:
    """One fetch of the pixel or of a tracked link, as the endpoint saw it."""

    kind: HitKind
    claim: HitClaim
    at: float
    method: str
    user_agent: str
    ip: str | None
    """The client's whole address; only what ``TRACKING_IP`` allows is written."""


class EventRecorder:
    """Buffers hits and writes them as ``opened`` / ``clicked`` events in batches."""

    def __init__(
        self,
        engine: Engine,
        ip_policy: TrackingIP,
        *,
        interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.engine = engine
        self.ip_policy = ip_policy
        self.interval = interval
        self.batch_size = batch_size
        self._pending: deque[Hit] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def add(self, hit: Hit) -> None:
        """Buffer one hit. Never touches the database, never raises."""
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(hit)
            full = len(self._pending) >= self.batch_size
        if full:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mailroom-event-recorder", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop the writer and write what is buffered (the app's shutdown calls it)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            self.flush()

    def flush(self) -> int:
        """Write every buffered hit, a batch per transaction; how many were written.

        A batch the database refuses goes back to the front of the buffer, to be tried at
        the next flush; the error is logged, never raised.
        """
        written = 0
        if self.dropped:
            logger.warning("dropped %d tracking hits: the database did not answer", self.dropped)
            self.dropped = 0
        while True:
            with self._lock:
                batch = [
                    self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))
                ]
            if not batch:
                return written
            try:
                with self.engine.begin() as connection:
                    found = find_messages(connection, (hit.claim.message_id for hit in batch))
                    written += record_events(connection, self._records(batch, found))
            except Exception as exc:  # any database failure: the hits are kept
                # One line, no traceback: this repeats every second while the database is down.
                logger.error("could not write %d tracking hits, will retry: %s", len(batch), exc)
                with self._lock:
                    room = (self._pending.maxlen or 0) - len(self._pending)
                    self._pending.extendleft(reversed(batch[len(batch) - max(room, 0) :]))
                return written

    def _records(
        self, batch: Sequence[Hit], found: Mapping[str, list[MessageRef]]
    ) -> list[EventRecord]:
        records: list[EventRecord] = []
        for hit in batch:
            ref = message_for(found.get(hit.claim.message_id, []), hit.claim.recipient)
            since = None
            if ref is not None and ref.sent_at is not None:
                since = round(hit.at - ref.sent_at, 3)
            label = label_hit(
                hit.kind,
                method=hit.method,
                user_agent=hit.user_agent,
                ip=hit.ip,
                seconds_since_delivery=since,
            )
            detail: dict[str, object] = {
                "method": hit.method.upper(),
                "user_agent": hit.user_agent[:_USER_AGENT_MAX],
                "ip": keep_ip(hit.ip, self.ip_policy),
                "seconds_since_delivery": since,
            }
            if ref is None:
                detail["message_id"] = hit.claim.message_id  # its row is gone (purged)
            records.append(
                EventRecord(
                    message_pk=ref.pk if ref is not None else None,
                    recipient=hit.claim.recipient,
                    type=EventType.OPENED if hit.kind is HitKind.OPEN else EventType.CLICKED,
                    at=hit.at,
                    label=label,
                    link_index=hit.claim.link_index,
                    detail=detail,
                )
            )
        return records
