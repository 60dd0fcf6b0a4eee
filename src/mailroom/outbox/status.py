"""The outbox's state for people: counts, send rates, recent failures, paused streams.

Shared by ``mailroom status`` and (later) the status page, so both tell the same story.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine

from mailroom.outbox import operations, operator_queries

__all__ = ["outbox_status"]


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
