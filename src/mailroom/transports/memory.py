"""Keeps every envelope in a list, for tests and for code that inspects what it sent."""

from __future__ import annotations

from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    name = "memory"

    def __init__(self) -> None:
        self.outbox: list[Envelope] = []

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        self.outbox.append(envelope)
        return SendResult(
            envelope.message_id, envelope.recipients, self.name, location="memory outbox"
        )
