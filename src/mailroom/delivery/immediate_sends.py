"""A send made at once, outside the worker (the test email), written down as a worker writes
its sends: a message in the outbox with its ``queued`` event, an attempt row per recipient with
the relay's reply, and the ``sent`` or ``failed`` events. So the message log shows it like any
other mail, and the status page's chart counts it.

Unlike a worker's send it is tried once: a person is waiting for the result, and a test email
that fails now must not be delivered by a retry an hour later. A refusal is final, no
follow-up row is made, and a stream is never paused for it.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass

from mailroom.delivery.capture_sink import sending_message_pk
from mailroom.delivery.completed_sends import CompletedSendOutcomes
from mailroom.delivery.outcomes import Outcome, WorkerStats
from mailroom.delivery.recording import log_attempts, write_outcomes
from mailroom.delivery.retry import RetryPolicy
from mailroom.errors import DatabaseError, DeliveryError
from mailroom.message import Message
from mailroom.outbox.store import Outbox
from mailroom.transports import Transport
from mailroom.transports.base import SendResult

__all__ = ["ImmediateSender", "SentNow"]


@dataclass(frozen=True, slots=True)
class SentNow:
    """A message sent at once: its id in the outbox, and what the relay said."""

    message_pk: int
    outcome: SendResult | DeliveryError
    """The result, or the error of a send that failed (recorded as ``failed``)."""
    not_recorded: DatabaseError | None = None
    """Why the outcome could not be written, if it could not: the message keeps its lease
    and a worker sends it again when that runs out."""


class ImmediateSender:
    """Sends messages through ``transport`` at once, each committed to ``outbox`` first."""

    def __init__(
        self, outbox: Outbox, transport: Transport, *, stream: str, name: str, lease_seconds: float
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.stream = stream
        self._lease_token = f"{name}-{secrets.token_hex(8)}"
        self._lease_seconds = lease_seconds
        # The policy is never asked (nothing is retried); the outcomes need one all the same.
        jitter = random.Random()  # noqa: S311 - retry jitter, not security (and never drawn)
        self._outcomes = CompletedSendOutcomes(RetryPolicy(), name, jitter, WorkerStats())

    async def send(self, message: Message) -> SentNow:
        """Commit ``message``, send it and record what happened.

        A :class:`~mailroom.errors.DatabaseError` while committing it is raised: nothing was
        sent. One while recording the outcome is not (the send happened): it is returned in
        :attr:`SentNow.not_recorded`.
        """
        claimed = await asyncio.to_thread(
            self.outbox.start_send_now,
            message,
            stream=self.stream,
            lease_token=self._lease_token,
            lease_until=time.time() + self._lease_seconds,
        )
        started = time.perf_counter()
        # The capture transport's sink names the message it stores the envelope for.
        sending = sending_message_pk.set(claimed.id)
        outcome: SendResult | DeliveryError
        try:
            outcome = await self.transport.send(claimed.envelope())
        except DeliveryError as error:
            outcome = error
        finally:
            sending_message_pk.reset(sending)
        took = time.perf_counter() - started
        recorded = (
            self._outcomes.given_up(self.transport, claimed, outcome, took)
            if isinstance(outcome, DeliveryError)
            else self._outcomes.sent(self.transport, claimed, outcome, took, retry_refused=False)
        )
        try:
            await asyncio.to_thread(self._write, recorded)
        except DatabaseError as exc:
            return SentNow(claimed.id, outcome, not_recorded=exc)
        return SentNow(claimed.id, outcome)

    def _write(self, outcome: Outcome) -> None:
        now = time.time()
        with self.outbox.engine.begin() as connection:
            _, rows = write_outcomes(
                connection,
                [outcome],
                lease_token=self._lease_token,
                now=now,
                pause_until=lambda _: now,  # never asked: an immediate send pauses nothing
            )
        log_attempts(rows)
