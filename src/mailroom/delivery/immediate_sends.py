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
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from mailroom.delivery.capture_sink import sending_message_pk
from mailroom.delivery.completed_sends import CompletedSendOutcomes
from mailroom.delivery.outcomes import Outcome, WorkerStats
from mailroom.delivery.recording import log_attempts, write_outcomes
from mailroom.delivery.retry import RetryPolicy
from mailroom.errors import DatabaseError, DeliveryError, DeliveryTimeoutError, TransientError
from mailroom.message import Message
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.store import Outbox
from mailroom.transports import Transport
from mailroom.transports.base import SendResult

__all__ = ["ImmediateSender", "SentNow"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SentNow:
    """A message sent at once: its id in the outbox, and what the relay said."""

    message_pk: int
    outcome: SendResult | DeliveryError
    """The result, or the error of a send that failed (recorded as ``failed``)."""
    not_recorded: Exception | None = None
    """Why the outcome could not be written, if it could not. The message stays leased
    until its lease runs out; then it is marked failed, never sent again (a test email)."""


class ImmediateSender:
    """Sends messages through ``transport`` at once, each committed to ``outbox`` first.

    ``redact`` is applied to the relay's words before they are stored (the SMTP login a relay
    may echo: :func:`mailroom.transports.doctor.login_hidden`).
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        stream: str,
        name: str,
        lease_seconds: float,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
        self.stream = stream
        self._lease_token = f"{name}-{secrets.token_hex(8)}"
        self._lease_seconds = lease_seconds
        # As the worker does: a send must end before its lease, or a sweep could hand the
        # message on while this is still sending it.
        self._send_bound = lease_seconds * 0.9
        self._redact = redact
        # The policy is never asked (nothing is retried); the outcomes need one all the same.
        jitter = random.Random()  # noqa: S311 - retry jitter, not security (and never drawn)
        self._outcomes = CompletedSendOutcomes(RetryPolicy(), name, jitter, WorkerStats())

    async def send(self, message: Message) -> SentNow:
        """Commit ``message``, send it and record what happened.

        A database error while committing it is raised: nothing was sent. One while recording
        the outcome is not (the send happened): it is returned in :attr:`SentNow.not_recorded`.
        Any other failure of the send is recorded as the message's failure.
        """
        claimed = await asyncio.to_thread(
            self.outbox.start_send_now,
            message,
            stream=self.stream,
            lease_token=self._lease_token,
            lease_until=time.time() + self._lease_seconds,
        )
        started = time.perf_counter()
        outcome = await self._send(claimed)
        took = time.perf_counter() - started
        recorded = (
            self._outcomes.given_up(self.transport, claimed, outcome, took)
            if isinstance(outcome, DeliveryError)
            else self._outcomes.sent(self.transport, claimed, outcome, took, retry_refused=False)
        )
        try:
            await asyncio.to_thread(self._write, self._redacted(recorded))
        except (DatabaseError, SQLAlchemyError) as exc:
            return SentNow(claimed.id, outcome, not_recorded=exc)
        return SentNow(claimed.id, outcome)

    async def _send(self, claimed: ClaimedMessage) -> SendResult | DeliveryError:
        # The capture transport's sink names the message it stores the envelope for.
        sending = sending_message_pk.set(claimed.id)
        bound = asyncio.timeout(self._send_bound)
        try:
            async with bound:
                return await self.transport.send(claimed.envelope())
        except DeliveryError as error:
            return error
        except Exception as error:
            if bound.expired():
                return DeliveryTimeoutError(
                    f"the send did not end within {self._send_bound:g} s (WORKER_LEASE_SECONDS "
                    f"= {self._lease_seconds:g})"
                )
            # A bug, not the relay: the message fails with what happened, and the traceback
            # goes to the log.
            logger.exception("unexpected error sending message %s", claimed.id)
            return TransientError(f"unexpected error: {type(error).__name__}: {error}")
        finally:
            sending_message_pk.reset(sending)

    def _redacted(self, outcome: Outcome) -> Outcome:
        completion = outcome.completion
        if completion.error is not None:
            outcome.completion = completion._replace(error=self._redact(completion.error))
        for row in outcome.attempt_rows:
            if row["server_text"] is not None:
                row["server_text"] = self._redact(row["server_text"])
        return outcome

    def _write(self, outcome: Outcome) -> None:
        now = time.time()
        with self.outbox.engine.begin() as connection:
            held, rows = write_outcomes(
                connection,
                [outcome],
                lease_token=self._lease_token,
                now=now,
                pause_until=lambda _: now,  # never asked: an immediate send pauses nothing
            )
        if not held:
            logger.warning(
                "message %s: its lease ran out before its outcome was written; it was marked "
                "failed as a test email whose sender stopped",
                outcome.message.id,
            )
        log_attempts(rows)
