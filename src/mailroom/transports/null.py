"""Accepts every envelope and throws it away (Django's ``dummy`` backend)."""

from __future__ import annotations

from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport

__all__ = ["NullTransport"]


class NullTransport(Transport):
    name = "null"

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        return SendResult(envelope.message_id, envelope.recipients, self.name, location="nowhere")
