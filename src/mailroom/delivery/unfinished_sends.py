"""The outcome of a send that did not run to its end: interrupted by a shutdown (perhaps
after the relay accepted some recipients), released unsent, or withheld as suppressed; and
what is known of a send cut short (:func:`partial_result`, :func:`flag_unanswered`).

:class:`OutcomeBuilder`, the worker's one builder, adds these outcomes to those of a completed
send (:class:`~mailroom.delivery.completed_sends.CompletedSendOutcomes`). A send interrupted
after the relay accepted some recipients is recorded as sent, as a completed one would be,
with the recipients it did not reach carried to a follow-up row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from mailroom.delivery.completed_sends import CompletedSendOutcomes
from mailroom.delivery.outcomes import Followup, Outcome
from mailroom.errors import DeliveryError, TransientError
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.queries import Completion
from mailroom.outbox.vocabulary import AttemptOutcome, Status
from mailroom.transports import Transport
from mailroom.transports.base import SendProgress, SendResult

__all__ = ["OutcomeBuilder", "flag_unanswered", "partial_result"]

# The name these records have always had, whichever outcome module writes them.
logger = logging.getLogger("mailroom.delivery.outcomes")


def partial_result(
    message: ClaimedMessage, transport: Transport, progress: SendProgress, error: DeliveryError
) -> SendResult:
    """A delivery cut short after the relay accepted some of its transactions: sent to those,
    refused with ``error`` for the recipients it did not reach."""
    done = {*progress.accepted, *progress.refused}
    rest = {r: error.refused.get(r, error) for r in message.recipients if r not in done}
    return SendResult(
        message_id=message.message_id,
        accepted=tuple(progress.accepted),
        transport=transport.name,
        reply=progress.replies.get(progress.accepted[-1]),
        refused={**progress.refused, **rest},
        replies=dict(progress.replies),
    )


def flag_unanswered(
    error: DeliveryError, message: ClaimedMessage, progress: SendProgress
) -> DeliveryError:
    """``error`` for a send cut short, with an error of its own for each recipient it did not
    finish: those whose transaction's final dot had left (``progress.unanswered``) get one
    that says the relay may have taken the message, so the send log flags them."""
    if not progress.unanswered:
        return error
    unanswered = set(progress.unanswered)
    flagged = type(error)(str(error), stage=error.stage, possibly_delivered=True)
    done = {*progress.accepted, *progress.refused}
    error.refused = {
        r: flagged if r in unanswered else error for r in message.recipients if r not in done
    }
    return error


class OutcomeBuilder(CompletedSendOutcomes):
    """Turns send results, delivery errors, interruptions, releases and suppressions into
    outcomes, counting them in ``stats``."""

    def suppressed(self, message: ClaimedMessage, reasons: Mapping[str, str]) -> Outcome:
        """Not sent: every recipient is on the suppression list (unsubscribed, bounced...).
        One send-log row per recipient says why; no attempt is used."""
        self.stats.suppressed += 1
        rows = [
            self._row(
                None,
                message,
                recipient,
                AttemptOutcome.SUPPRESSED,
                0.0,
                server_text=f"suppressed: {reason}",
            )
            for recipient, reason in reasons.items()
        ]
        summary = ", ".join(f"{r} ({reason})" for r, reason in reasons.items())
        return Outcome(
            message,
            Completion(
                id=message.id,
                status=Status.SUPPRESSED,
                due_at=time.time(),
                attempts_used=0,
                error=f"suppressed: {summary}"[:1000],
            ),
            rows,
        )

    def interrupted(
        self,
        transport: Transport,
        message: ClaimedMessage,
        progress: SendProgress,
        duration: float,
    ) -> Outcome:
        """Aborted by a shutdown, its grace period over: back to the queue, due now, no
        attempt used. Not a deferral: the relay did nothing wrong, and a worker restarted
        by every deploy must not use up the message's attempts or push it back by a backoff.
        (Only an abort in the moment between the final dot and the relay's reply can repeat
        a message the relay took; those recipients are flagged possible duplicates.)

        A delivery in several transactions may have been aborted after the relay accepted
        some of them: those recipients have the message. The message is then sent (and
        counted as sent only, not also as released), as when a relay defers some recipients.
        Those the relay refused for now in a transaction that completed had their attempt:
        they wait in a follow-up row after the usual backoff, with the attempt counted. Only
        those not reached go back to the queue free, in a follow-up row due now that starts
        with the message's attempts (the interrupted part used none).
        """
        reason = "interrupted: the worker stopped during the send (WORKER_SHUTDOWN_GRACE)"
        now = time.time()
        if progress.accepted:
            return self._partly_sent(transport, message, progress, duration, reason=reason, now=now)
        self.stats.released += 1
        logger.warning(
            "message %s (%s): the worker stopped during its send; it goes back to the queue",
            message.id,
            message.message_id,
            extra={"message_pk": message.id, "message_id": message.message_id},
        )
        cut_short = flag_unanswered(TransientError(reason), message, progress)
        self._warn_if_possibly_delivered(message, [*cut_short.refused.values()])
        rows = [
            self._row(
                transport,
                message,
                recipient,
                AttemptOutcome.INTERRUPTED,
                duration,
                server_text=reason,
                possible_duplicate=cut_short.refused.get(recipient, cut_short).possibly_delivered,
            )
            for recipient in message.recipients
        ]
        return Outcome(
            message,
            Completion(
                id=message.id,
                status=Status.QUEUED,
                due_at=now,
                attempts_used=0,
                error=reason,
                keep_error=True,  # a follow-up row's real deferral reply stays
            ),
            rows,
        )

    def _partly_sent(
        self,
        transport: Transport,
        message: ClaimedMessage,
        progress: SendProgress,
        duration: float,
        *,
        reason: str,
        now: float,
    ) -> Outcome:
        accepted = set(progress.accepted)
        rest = [r for r in message.recipients if r not in accepted and r not in progress.refused]
        logger.warning(
            "message %s (%s): the worker stopped during its send, after %d of its recipients "
            "were accepted; the other %d go back to the queue",
            message.id,
            message.message_id,
            len(accepted),
            len(rest),
            extra={"message_pk": message.id, "message_id": message.message_id},
        )
        cut_short = flag_unanswered(TransientError(reason), message, progress)
        result = partial_result(message, transport, progress, cut_short)
        # Refused for now in a transaction that completed: that was an attempt, so they wait
        # the backoff with it counted, as after any 4xx. Only those not reached are free.
        followups = []
        deferred = self._followup(message, progress.refused, now)
        if deferred is not None:
            followups.append(deferred)
        if rest:
            followups.append(Followup(rest, now, message.attempts, cut_short, keep_error=True))
        carried = {r for followup in followups for r in followup.recipients}
        return self._sent(
            transport,
            message,
            result,
            duration,
            followups=followups,
            carried=carried,
            now=now,
            interrupted=frozenset(rest),
        )

    def released(self, message: ClaimedMessage) -> Outcome:
        """Back to the queue, no attempt used (shutting down, or its stream is paused)."""
        self.stats.released += 1
        return Outcome(
            message,
            Completion(id=message.id, status=Status.QUEUED, due_at=time.time(), attempts_used=0),
        )
