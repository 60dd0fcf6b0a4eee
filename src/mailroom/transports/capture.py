"""Keeps each envelope in the outbox database's captured mail instead of relaying it.

A real transport: the worker records its attempts, statuses and events as it does for SMTP,
and the captured message is the exact bytes and envelope a relay would have got. Transports
cannot reach the outbox (a lower layer), so the storing is handed to a :class:`CaptureSink`
that the caller provides: the worker's writes through its database thread.
"""

from __future__ import annotations

from typing import Protocol

from mailroom.errors import DatabaseError, TransientError
from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport

__all__ = ["CAPTURE_DESCRIPTION", "CaptureSink", "CaptureTransport"]

CAPTURE_DESCRIPTION = "capture (kept in the outbox database's captured mail; nothing leaves)"


class CaptureSink(Protocol):
    """Stores one envelope where captured mail is kept; returns the captured message's id."""

    async def __call__(self, envelope: Envelope, /) -> int: ...


class CaptureTransport(Transport):
    name = "capture"

    def __init__(self, sink: CaptureSink) -> None:
        self._sink = sink

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        try:
            captured_id = await self._sink(envelope)
        except DatabaseError as error:
            # The database is busy or away: this message is not lost, only not yet captured;
            # it is tried again like any message a relay could not take for now.
            raise TransientError(f"capture: could not store the message: {error}") from error
        return SendResult(
            envelope.message_id,
            envelope.recipients,
            self.name,
            location=f"captured #{captured_id}",
        )

    def describe(self) -> str:
        return CAPTURE_DESCRIPTION
