"""Prints each message to a stream (standard output by default); sends nothing anywhere."""

from __future__ import annotations

import sys
from typing import TextIO

from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport

__all__ = ["ConsoleTransport"]

_RULE = "-" * 72


class ConsoleTransport(Transport):
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        stream = self._stream or sys.stdout
        body = envelope.data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        stream.write(
            f"{_RULE}\nMAIL FROM: {envelope.sender}\n"
            f"RCPT TO: {', '.join(envelope.recipients)}\n\n{body}\n{_RULE}\n"
        )
        stream.flush()
        return SendResult(
            envelope.message_id, envelope.recipients, self.name, location="standard output"
        )
