"""Sending one claimed message over a transport's open connection, within its lease.

No send outlives its lease: one still running when a tenth of the lease is left is cut off.
What the relay accepted before the cut-off (:class:`SendProgress`) is kept: those recipients
have the message, and only the others are tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

from mailroom.config import Settings
from mailroom.delivery.capture_sink import sending_message_pk
from mailroom.delivery.outcomes import Outcome
from mailroom.delivery.retry import PauseStream
from mailroom.delivery.throttle import Throttle
from mailroom.delivery.unfinished_sends import OutcomeBuilder, flag_unanswered, partial_result
from mailroom.errors import DeliveryError, DeliveryTimeoutError, TransientError
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.transports import Transport
from mailroom.transports.base import SendProgress
from mailroom.transports.doctor import diagnose, login_hidden

__all__ = ["MessageSender"]

# The worker's log, whichever of its modules writes the record.
logger = logging.getLogger("mailroom.delivery.worker")


class MessageSender:
    """What a worker's senders do with each message they take: check that it may go now
    (stream pause, throttle, lease left), send it, and hand its outcome on."""

    def __init__(
        self,
        settings: Settings,
        *,
        outcomes: OutcomeBuilder,
        throttle: Throttle,
        stopping: asyncio.Event,
        add_outcome: Callable[[Outcome], None],
        now: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.outcomes = outcomes
        self.throttle = throttle
        self._stopping = stopping
        self._add_outcome = add_outcome
        self._now = now
        # None may outlive its lease: a relay that reads slowly but steadily never trips
        # EMAIL_TIMEOUT, which bounds each wait, not the whole. A send is cut off this long
        # before its lease ends, which leaves the time to record its outcome while the lease
        # still holds.
        self._cutoff_margin = settings.WORKER_LEASE_SECONDS / 10
        # Time a send may take before its lease runs out: never start one with less left
        # (and never one that would be cut off before it had a fair part of the lease).
        self._lease_margin = max(
            min(2 * settings.EMAIL_TIMEOUT, settings.WORKER_LEASE_SECONDS / 2),
            2 * self._cutoff_margin,
        )
        self._paused_here: dict[str, float] = {}  # stream -> until, as this worker knows it
        self._hide_login = login_hidden(settings)

    async def handle(
        self, transport: Transport, message: ClaimedMessage, progress: SendProgress
    ) -> None:
        pause = self._paused_here.get(message.stream)
        if pause is not None and pause > self._now():
            self._add_outcome(self._released(message))
            return
        if not await self.throttle.acquire(self._stopping):
            self._add_outcome(self._released(message))
            return
        # A long throttle wait can outlast the lease; then another worker may already hold
        # the message, and sending it here would send it twice.
        if message.lease_expires_at - self._now() < self._lease_margin:
            self._add_outcome(self._released(message))
            return
        outcome = await self._deliver(transport, message, progress)
        self._add_outcome(outcome)
        try:
            await self.throttle.release()
        except Exception:  # the outcome is safe; a missed burst count only shortens a pause
            logger.exception("could not record the end of a throttled send")

    async def _deliver(
        self, transport: Transport, message: ClaimedMessage, progress: SendProgress
    ) -> Outcome:
        envelope = message.envelope()
        started = time.perf_counter()
        cutoff = message.lease_expires_at - self._cutoff_margin - self._now()
        bound = asyncio.timeout(max(cutoff, 0.0))
        # The capture transport's sink names the message it stores the envelope for.
        sending = sending_message_pk.set(message.id)
        try:
            async with bound:
                result = await transport.send(envelope, progress)
        except DeliveryError as error:
            failure = error
        except Exception as error:
            if bound.expired():  # the send ran out of lease (a TimeoutError from the bound)
                failure = self._cut_off(time.perf_counter() - started)
            else:  # a bug, not the relay: keep the message, log the traceback
                logger.exception("unexpected error sending message %s", message.id)
                failure = TransientError(f"unexpected error: {type(error).__name__}: {error}")
            # Cut off after the final dot of a transaction: its recipients may have it.
            failure = flag_unanswered(failure, message, progress)
            if progress.accepted:  # those have it: only the others are tried again
                result = partial_result(message, transport, progress, failure)
                duration = time.perf_counter() - started
                return self.outcomes.sent(transport, message, result, duration)
        else:
            return self.outcomes.sent(transport, message, result, time.perf_counter() - started)
        finally:
            sending_message_pk.reset(sending)
        outcome = self.outcomes.failed(transport, message, failure, time.perf_counter() - started)
        if outcome.pause is not None:
            outcome.pause = self._pausing(message, outcome.pause, failure)
            outcome = self._without_login(outcome)
        return outcome

    def _cut_off(self, took: float) -> DeliveryError:
        return DeliveryTimeoutError(
            f"the send was cut off after {took:.1f} s, before the message's lease "
            f"(WORKER_LEASE_SECONDS={self.settings.WORKER_LEASE_SECONDS:g}) ran out and another "
            "worker could send it too; the relay reads too slowly for its size (raise "
            "WORKER_LEASE_SECONDS for large messages over a slow link)"
        )

    def _pausing(
        self, message: ClaimedMessage, pause: PauseStream, error: DeliveryError
    ) -> PauseStream:
        """The first message of a stream to hit a configuration error pauses it here, logs it
        (once: the others in flight come back with the same error) and stores the advice with
        the reason, for ``mailroom status`` and ``mailroom streams list``."""
        known = self._paused_here.get(message.stream)
        self._paused_here[message.stream] = pause.until.timestamp()
        # The reason and advice are stored with the pause and shown on the status page: the
        # advice names the login's setting, not its value, and the relay's reply in the reason
        # (which may echo the user name) is filtered.
        reason = self._hide_login(pause.reason)
        advice = diagnose(
            error, self.settings, sender_setting=self._sender_setting(message), name_login=False
        )
        if known is None or known <= self._now():
            logger.error(
                "pausing stream %s: %s. %s",
                message.stream,
                reason,
                " ".join(advice.splitlines()),
                extra={"stream": message.stream},
            )
        return replace(pause, reason=f"{reason}\n{advice}")

    def _without_login(self, outcome: Outcome) -> Outcome:
        """``outcome`` with the relay's words filtered of the SMTP login: a paused stream's
        error is a refusal of our login or sender, where some relays echo the user name, and
        it is shown in the message's page."""
        completion = outcome.completion
        if completion.error is not None:
            outcome.completion = completion._replace(error=self._hide_login(completion.error))
        for row in outcome.attempt_rows:
            if row["server_text"] is not None:
                row["server_text"] = self._hide_login(row["server_text"])
        return outcome

    def _sender_setting(self, message: ClaimedMessage) -> str:
        """The setting the refused sender came from, for the advice."""
        sender = message.sender.lower()
        for name, value in (
            ("DEFAULT_FROM_EMAIL", self.settings.DEFAULT_FROM_EMAIL),
            ("NOREPLY_EMAIL_ADDRESS", self.settings.noreply_address),
        ):
            if sender and sender in value.lower():
                return name
        return "DEFAULT_FROM_EMAIL (or the from_email the application passes)"

    def _released(self, message: ClaimedMessage) -> Outcome:
        return self.outcomes.released(message)
