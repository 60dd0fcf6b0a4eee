"""The outbox's state for people: counts, send rates, recent failures, paused streams.

:func:`outbox_status` is ``mailroom status``'s report; :func:`status_overview` is the status
page's, which adds what a screen can show and a terminal line cannot: outcomes per hour over
the last day, the send rate now, the newest errors and the counts per stream.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from mailroom.outbox import activity_queries, metric_queries, operations, operator_queries
from mailroom.outbox.activity_queries import HOUR, ErrorRow, HourCounts
from mailroom.outbox.operations import StreamRow

__all__ = ["StatusOverview", "outbox_status", "status_overview"]


def outbox_status(engine: Engine, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    with engine.connect() as connection:
        last_minute = operator_queries.sent_since(connection, now - 60)
        last_hour = operator_queries.sent_since(connection, now - 3600)
        return {
            "counts": operator_queries.counts_by_status(connection),
            "sent_last_minute": last_minute,
            "sent_last_hour": last_hour,
            "rate_per_second_last_minute": round(last_minute / 60, 2),
            "rate_per_minute_last_hour": round(last_hour / 60, 2),
            "recent_failures": operator_queries.recent_failures(connection),
            "paused_streams": [
                {
                    "name": stream.name,
                    "paused_until": stream.paused_until,
                    "pause_reason": stream.reason,
                    "advice": stream.advice,
                }
                for stream in operations.list_streams(connection, now=now)
                if stream.paused_until is not None
            ],
        }


@dataclass(frozen=True, slots=True)
class StatusOverview:
    """The outbox at a glance, read at ``now``."""

    now: float
    counts: dict[str, int]
    """Messages per status, every status present (0 when none)."""
    counts_by_stream: dict[str, dict[str, int]]
    """Stream → status → messages, for the statuses the stream has."""
    sent_last_minute: int
    sent_last_5_minutes: int
    hours: list[HourCounts]
    """Outcomes per clock hour, oldest first; the last is the hour ``now`` is in."""
    last_errors: list[ErrorRow]
    """The newest deferred or failed recipients, newest first."""
    paused_streams: list[StreamRow]
    """Streams paused now; ``paused_until`` is when the worker next tries one of its messages."""

    @property
    def rate_per_minute(self) -> float:
        """Messages sent per minute, averaged over the last five."""
        return round(self.sent_last_5_minutes / 5, 1)


def status_overview(
    engine: Engine, now: float | None = None, *, hours: int = 24, errors: int = 10
) -> StatusOverview:
    """What the status page shows: counts, rates, the last ``hours`` hour by hour, the newest
    ``errors`` errors and the paused streams; every figure counted in the database."""
    now = time.time() if now is None else now
    first_hour = (math.floor(now / HOUR) - (hours - 1)) * HOUR
    with engine.connect() as connection:
        by_stream: dict[str, dict[str, int]] = {}
        for (status, stream), count in metric_queries.queue_depth(connection).items():
            by_stream.setdefault(stream, {})[status] = count
        return StatusOverview(
            now=now,
            counts=operator_queries.counts_by_status(connection),
            counts_by_stream=dict(sorted(by_stream.items())),
            sent_last_minute=activity_queries.sent_messages_since(connection, now - 60),
            sent_last_5_minutes=activity_queries.sent_messages_since(connection, now - 300),
            hours=activity_queries.outcomes_per_hour(connection, start=first_hour, hours=hours),
            last_errors=activity_queries.errors_newest_first(connection, limit=errors),
            paused_streams=[
                stream
                for stream in operations.list_streams(connection, now=now)
                if stream.paused_until is not None
            ],
        )
