"""Writes each message as one ``.eml`` file, atomically, for looking at without a relay.

Each file appears complete or not at all: the bytes go to a temporary file in the same
folder, are flushed to disk, and the file is renamed into place (``os.replace`` is atomic
on one filesystem). A reader polling the folder never sees half a message.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path

from mailroom.errors import TransportSetupError
from mailroom.message import Envelope
from mailroom.transports.base import SendProgress, SendResult, Transport

__all__ = ["FileTransport"]


class FileTransport(Transport):
    name = "file"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def describe(self) -> str:
        return f"file ({self.directory.resolve()})"

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        path = await asyncio.to_thread(self._write, envelope.data)
        return SendResult(envelope.message_id, envelope.recipients, self.name, location=str(path))

    def _write(self, data: bytes) -> Path:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportSetupError(
                f"cannot create EMAIL_FILE_PATH {self.directory}: {exc.strerror}"
            ) from exc
        # Sortable by time, unique without coordination between processes.
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}"
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        final = self.directory / name
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return final
