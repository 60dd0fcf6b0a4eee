"""``GET /api/v1/status``: the queue's state, the same data as ``mailroom status --json`` (both
call :func:`mailroom.outbox.status.outbox_status`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from mailroom.outbox.status import outbox_status
from mailroom.web.api.messages import ERROR_RESPONSES
from mailroom.web.auth import AdminKey
from mailroom.web.dependencies import DatabaseEngine

__all__ = ["router"]

router = APIRouter(tags=["status"])


class Failure(BaseModel):
    """One recent attempt that did not deliver."""

    at: float = Field(description="When (seconds since the epoch, UTC).")
    message_pk: int
    recipient: str
    outcome: str
    code: int | None
    enhanced_status: str | None
    server_text: str | None


class PausedStream(BaseModel):
    name: str
    paused_until: float | None = Field(description="Seconds since the epoch, UTC.")
    pause_reason: str | None
    advice: str | None


class QueueStatus(BaseModel):
    """Counts by status, send rates, recent failures and paused streams; times are seconds
    since the epoch, as in ``mailroom status --json``."""

    counts: dict[str, int] = Field(description="Messages by status.")
    sent_last_minute: int
    sent_last_hour: int
    rate_per_second_last_minute: float
    rate_per_minute_last_hour: float
    recent_failures: list[Failure]
    paused_streams: list[PausedStream]


@router.get(
    "/status", response_model=QueueStatus, responses=ERROR_RESPONSES, summary="The queue's state"
)
def queue_status(_caller: AdminKey, engine: DatabaseEngine) -> dict[str, Any]:
    return outbox_status(engine)
