"""Where the ``capture`` transport's envelopes go: the outbox database's captured mail.

The transport (a lower layer) hands each envelope to a :class:`DatabaseCaptureSink`, which
stores it through a :class:`~mailroom.delivery.database_thread.DatabaseThread`, so the event
loop never waits on SQLite. Envelopes that arrive while a write is running are stored together
in the next one, one transaction for all of them (a group commit): a worker's senders capture
a batch for the price of one commit, and a lone message is not kept waiting for company.

The captured row names the outbox message it was sent for. The envelope does not carry that
id, and the transport has no use for it, so the sender says it in :data:`sending_message_pk`
(a context variable: each sender is a task of its own) while it sends.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from sqlalchemy import Engine

from mailroom.delivery.database_thread import DatabaseThread
from mailroom.message import Envelope
from mailroom.outbox.capture_queries import store_captured

__all__ = ["DatabaseCaptureSink", "sending_message_pk", "subject_of"]

sending_message_pk: ContextVar[int | None] = ContextVar("mailroom_sending_message_pk", default=None)
"""The outbox message the current task is sending, if any (set by the worker's sender)."""

# The Subject field and its folded continuation lines (RFC 5322 §2.2.3), in the header block.
_SUBJECT = re.compile(rb"^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def subject_of(data: bytes) -> str:
    """The decoded ``Subject`` of a message's bytes (RFC 2047 words decoded), or ``""``.

    Read with a pattern rather than :mod:`email`'s parser, which cost ten times as much as
    storing the message: the capture transport runs this for every message it keeps."""
    end = data.find(b"\r\n\r\n")
    found = _SUBJECT.search(data if end < 0 else data[:end])
    if found is None:
        return ""
    # Raw UTF-8 is allowed in an SMTPUTF8 message's headers (RFC 6532).
    raw = _FOLD.sub(b"", found.group(1)).rstrip(b"\r").decode("utf-8", errors="replace")
    try:
        return str(make_header(decode_header(raw)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):  # a broken encoded word
        return raw


@dataclass(frozen=True, slots=True)
class _Capture:
    envelope: Envelope
    message_pk: int | None


class DatabaseCaptureSink:
    """Stores envelopes in ``mailroom_captured``, keeping the newest ``keep`` rows."""

    def __init__(
        self,
        engine: Engine,
        db: DatabaseThread,
        *,
        keep: int,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.keep = keep
        self._db = db
        self._now = now
        self._pending: list[tuple[_Capture, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def __call__(self, envelope: Envelope, /) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((_Capture(envelope, sending_message_pk.get()), future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="mailroom-capture")
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                ids = await self._db.call(self.store, [capture for capture, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():  # a sender cancelled meanwhile no longer waits
                        future.set_exception(error)
                continue
            for (_, future), captured_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(captured_id)

    def store(self, captures: list[_Capture]) -> list[int]:
        """Store ``captures`` in one transaction (in the database thread); their ids."""
        now = self._now()
        with self.engine.begin() as connection:
            return [
                store_captured(
                    connection,
                    message_pk=capture.message_pk,
                    message_id=capture.envelope.message_id,
                    mail_from=capture.envelope.sender,
                    recipients=capture.envelope.recipients,
                    subject=subject_of(capture.envelope.data),
                    data=capture.envelope.data,
                    now=now,
                    keep=self.keep,
                )
                for capture in captures
            ]
