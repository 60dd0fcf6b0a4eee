"""The tracking hits' writer: hits are buffered in memory and written in batches.

A pixel answers in microseconds and never waits on the database: the endpoint hands its hit
to :meth:`EventRecorder.add` (an append under a lock) and returns the image. A thread writes
what has gathered every :data:`FLUSH_INTERVAL` seconds, or as soon as :data:`BATCH_SIZE`
hits wait, each batch in one transaction: one query resolves the batch's Message-IDs to
their outbox rows (pk, and delivery time for "seconds since delivery"), the hits are
labelled (:func:`~mailroom.tracking.labels.label_hit`) and written with
:func:`~mailroom.outbox.event_queries.record_events`.

The write transaction holds the database's one write lock (on SQLite), so nothing but the
insert happens inside it: the Message-IDs are looked up first, on ``read_engine`` (a
read-only engine that takes no lock), and the hits are labelled before the transaction
begins. A hit's user agent is cut to :data:`USER_AGENT_MAX` characters as it is added, so
no request can make a hit, its labelling or the buffer large.

What can be lost: the hits of the last second or so before the process dies without a
shutdown (a crash, SIGKILL, power). A graceful shutdown flushes what is buffered
(:meth:`EventRecorder.close`, called from the app's lifespan, waits at most
:data:`CLOSE_TIMEOUT`). While the database is unreachable, hits wait in memory and are
written once it answers again; beyond :data:`MAX_PENDING` hits or :data:`MAX_PENDING_BYTES`
the oldest are dropped, with a warning, rather than the process growing without bound.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from mailroom.config import TrackingIP
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.vocabulary import EventType
from mailroom.tracking.labels import HitKind, keep_ip, label_hit
from mailroom.tracking.queries import MessageRef, find_messages, message_for
from mailroom.tracking.tokens import HitClaim

__all__ = [
    "BATCH_SIZE",
    "CLOSE_TIMEOUT",
    "FLUSH_INTERVAL",
    "MAX_PENDING",
    "MAX_PENDING_BYTES",
    "USER_AGENT_MAX",
    "EventRecorder",
    "Hit",
]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
"""Seconds between writes: at most this much of hits is lost if the process dies."""
BATCH_SIZE = 500
"""Hits written per transaction; this many waiting wakes the writer early."""
MAX_PENDING = 100_000
"""Hits kept in memory while the database does not answer; the oldest go first beyond."""
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""The same bound in (estimated) bytes of the buffered hits' strings."""
USER_AGENT_MAX = 512
"""Characters kept of a user agent; a real one is far shorter, and a longer one (a client
may send megabytes) would be held, labelled and written whole."""
CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`EventRecorder.close` waits for the last write; a database that does not
answer by then must not hold the process's shutdown."""
_HIT_OVERHEAD = 256  # bytes of a hit beyond its strings: the objects themselves


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

    def size(self) -> int:
        """About how many bytes the hit holds: what the buffer's byte bound counts."""
        strings = (self.claim.message_id, self.claim.recipient, self.user_agent, self.ip or "")
        return _HIT_OVERHEAD + sum(len(text) for text in strings)


class EventRecorder:
    """Buffers hits and writes them as ``opened`` / ``clicked`` events in batches."""

    def __init__(
        self,
        engine: Engine,
        ip_policy: TrackingIP,
        *,
        read_engine: Engine | None = None,
        interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        """``read_engine``: where the hits' messages are looked up (``engine`` by default)."""
        self.engine = engine
        self.read_engine = read_engine if read_engine is not None else engine
        self.ip_policy = ip_policy
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._pending: deque[Hit] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def add(self, hit: Hit) -> None:
        """Buffer one hit (its user agent cut to :data:`USER_AGENT_MAX`). Never touches the
        database, never blocks on it, never raises."""
        if len(hit.user_agent) > USER_AGENT_MAX:
            hit = replace(hit, user_agent=hit.user_agent[:USER_AGENT_MAX])
        size = hit.size()
        with self._lock:
            self._pending.append(hit)
            self._bytes += size
            while len(self._pending) > self.max_pending or self._bytes > self.max_pending_bytes:
                self._bytes -= self._pending.popleft().size()
                self.dropped += 1
            full = len(self._pending) >= self.batch_size
        if full:
            self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def pending_bytes(self) -> int:
        """The buffer's size as its byte bound counts it."""
        with self._lock:
            return self._bytes

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mailroom-event-recorder", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop the writer and write what is buffered (the app's shutdown calls it), waiting
        at most ``timeout`` seconds; what is still buffered then is reported and lost."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            self.flush()  # never started: nobody else writes
            return
        thread.join(timeout)  # the thread's last act is a flush
        if thread.is_alive():
            logger.warning(
                "stopped waiting for the tracking hit writer after %.0f s: about %d hits "
                "were not written (the database did not answer)",
                timeout,
                self.pending(),
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
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
                self._bytes -= sum(hit.size() for hit in batch)
            if not batch:
                return written
            try:
                # Looked up and labelled first: the write transaction holds the write lock.
                with self.read_engine.connect() as connection:
                    found = find_messages(connection, (hit.claim.message_id for hit in batch))
                records = self._records(batch, found)
                with self.engine.begin() as connection:
                    written += record_events(connection, records)
            except Exception as exc:  # any database failure: the hits are kept
                # One line, no traceback: this repeats every second while the database is down.
                logger.error("could not write %d tracking hits, will retry: %s", len(batch), exc)
                self._put_back(batch)
                return written

    def _put_back(self, batch: Sequence[Hit]) -> None:
        """A refused batch, back at the front, as far as the bounds allow (the oldest go)."""
        with self._lock:
            for hit in reversed(batch):
                size = hit.size()
                full = len(self._pending) >= self.max_pending
                if full or self._bytes + size > self.max_pending_bytes:
                    self.dropped += 1
                    continue
                self._pending.appendleft(hit)
                self._bytes += size

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
                "user_agent": hit.user_agent[:USER_AGENT_MAX],
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
