"""``/metrics``: the outbox in Prometheus' text format, derived from the database at scrape
time (:mod:`mailroom.outbox.metric_queries`), with the process's own CPU and memory.

- ``mailroom_queue_messages{status,stream}`` (gauge): messages per status and stream;
- ``mailroom_queue_oldest_due_seconds`` (gauge): how long the longest-waiting due message
  has waited: the one figure that says delivery is falling behind;
- ``mailroom_attempts_total{outcome}`` (counter): delivery attempts (one per message and
  recipient) by outcome: sent, deferred, failed, suppressed, paused, refused, interrupted;
- ``mailroom_events_total{type}`` (counter): events by type (queued, sent, opened...);
- ``mailroom_attempt_duration_seconds`` (histogram): how long attempts took.

The counters count rows: when old rows are purged a counter goes down, which Prometheus
reads as a reset (``rate`` and ``increase`` handle it). No label holds an address, a subject
or a secret: only statuses, stream names, outcomes and event types. The read is bounded
(:data:`METRICS_TIMEOUT`, 503 past it), one at a time (:mod:`.single_flight`), and on SQLite
takes no write lock (:mod:`mailroom.outbox.read_engine`): a scrape never holds up a send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import Engine

from mailroom.errors import MailroomError
from mailroom.outbox import metric_queries
from mailroom.outbox.read_engine import read_only_engine
from mailroom.outbox.vocabulary import AttemptOutcome, EventType, Status
from mailroom.web.errors import error_response
from mailroom.web.single_flight import SingleFlight

__all__ = ["DURATION_BUCKETS", "METRICS_TIMEOUT", "OutboxCollector", "router"]

logger = logging.getLogger(__name__)

METRICS_TIMEOUT = 10.0
"""Seconds a scrape waits for the database before it answers 503."""

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds of the attempt latency buckets, in seconds (``+Inf`` is added)."""

router = APIRouter(include_in_schema=False)


class OutboxCollector:
    """A prometheus-client collector whose every value is read from the outbox when scraped."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        return list(self._families({}, 0.0, {}, {}, None))

    def collect(self) -> Iterable[Metric]:
        with self.engine.connect() as connection:
            depth = metric_queries.queue_depth(connection)
            oldest = metric_queries.oldest_due_age(connection, time.time())
            outcomes = metric_queries.attempt_outcomes(connection)
            counted = metric_queries.event_counts(connection)
            durations = metric_queries.attempt_durations(connection, DURATION_BUCKETS)
        return list(self._families(depth, oldest, outcomes, counted, durations))

    @staticmethod
    def _families(
        depth: dict[tuple[str, str], int],
        oldest: float,
        outcomes: dict[str, int],
        counted: dict[str, int],
        durations: metric_queries.DurationHistogram | None,
    ) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "mailroom_queue_messages",
            "Messages in the outbox per status and stream.",
            labels=["status", "stream"],
        )
        # Every status of every stream seen, 0 included: a series that vanishes at 0 would
        # make an alert on it go quiet instead of clearing.
        for stream in sorted({stream for _status, stream in depth}):
            for status in Status:
                queue.add_metric([status.value, stream], depth.get((status.value, stream), 0))
        yield queue
        yield GaugeMetricFamily(
            "mailroom_queue_oldest_due_seconds",
            "Seconds the longest-waiting due message (queued or deferred) has waited.",
            value=oldest,
        )
        attempts = CounterMetricFamily(
            "mailroom_attempts",
            "Delivery attempts (one per message and recipient) by outcome.",
            labels=["outcome"],
        )
        for outcome in AttemptOutcome:
            attempts.add_metric([outcome.value], outcomes.get(outcome.value, 0))
        yield attempts
        events = CounterMetricFamily(
            "mailroom_events", "Events recorded, by type.", labels=["type"]
        )
        for event_type in EventType:
            events.add_metric([event_type.value], counted.get(event_type.value, 0))
        yield events
        histogram = HistogramMetricFamily(
            "mailroom_attempt_duration_seconds",
            "How long delivery attempts took, in seconds.",
            labels=[],
        )
        if durations is not None:
            buckets = [
                (_bucket_label(bound), float(count))
                for bound, count in zip(durations.bounds, durations.cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(durations.count)))
            histogram.add_metric([], buckets, durations.total)
        yield histogram


def _bucket_label(bound: float) -> str:
    """The ``le`` label as Prometheus writes it (``1.0``, ``0.005``)."""
    return repr(float(bound))


class MetricsExporter:
    """The registry of one app: the outbox collector and the process collector."""

    def __init__(self, engine: Engine, timeout: float = METRICS_TIMEOUT) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(OutboxCollector(read_only_engine(engine)))
        ProcessCollector(registry=self.registry)
        self._flight = SingleFlight(
            lambda: generate_latest(self.registry), name="mailroom-metrics", timeout=timeout
        )

    async def render(self) -> Response:
        try:
            body = await self._flight.run()
        except TimeoutError:
            message = f"the database did not answer within {self._flight.timeout:g} s"
            return error_response(503, "metrics_unavailable", message)
        except MailroomError as exc:  # the database's own error, redacted
            return error_response(503, "metrics_unavailable", str(exc))
        except Exception as exc:
            logger.warning("the metrics could not be read", exc_info=True)
            message = f"the metrics could not be read ({type(exc).__name__})"
            return error_response(503, "metrics_unavailable", message)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    exporter: MetricsExporter | None = getattr(request.app.state, "metrics", None)
    if exporter is None:
        exporter = request.app.state.metrics = MetricsExporter(request.app.state.engine)
    return await exporter.render()
