"""What one delivery attempt comes to: the message's next state and its send-log rows.

The worker sends; this module decides, through the retry policy, what the result means —
sent, deferred until when, failed, or a pause of the stream — and writes it down as an
:class:`Outcome` for the worker's recorder to commit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailroom.delivery.retry import GiveUp, PauseStream, RetryAt, RetryPolicy
from mailroom.errors import DeliveryError, TransientError, Verdict
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.queries import Completion
from mailroom.outbox.schema import AttemptOutcome, Status
from mailroom.transports import Transport
from mailroom.transports.base import SendProgress, SendResult

__all__ = [
    "Followup",
    "Outcome",
    "OutcomeBuilder",
    "WorkerStats",
    "flag_unanswered",
    "partial_result",
]

logger = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """What one run of a worker did."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    paused: int = 0
    released: int = 0
    suppressed: int = 0
    possible_duplicates: int = 0


@dataclass
class Followup:
    """Recipients of a message sent to the others, to be tried again in a row of their own
    (see :func:`mailroom.outbox.queries.insert_followup`)."""

    recipients: list[str]
    due_at: float
    attempts: int
    """The attempts the new row starts with: those already made for these recipients."""
    reply: DeliveryError | None = None
    """The refusal that deferred them, shown as the row's last error."""
    keep_error: bool = False
    """``reply`` is only a fallback: the row keeps the source's last error if it has one."""


@dataclass
class Outcome:
    """One attempt's result, waiting for the recorder."""

    message: ClaimedMessage
    completion: Completion
    attempt_rows: list[dict[str, Any]] = field(default_factory=list)
    pause: PauseStream | None = None
    followups: list[Followup] = field(default_factory=list)
    """Recipients refused for now (or not reached) while others were accepted: one row for
    those deferred by the relay (after a backoff), one for those not reached (due now)."""


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


class OutcomeBuilder:
    """Turns send results and delivery errors into outcomes, counting them in ``stats``."""

    def __init__(
        self, policy: RetryPolicy, worker_name: str, rng: random.Random, stats: WorkerStats
    ) -> None:
        self.policy = policy
        self.worker_name = worker_name
        self._rng = rng
        self.stats = stats

    def _row(
        self,
        transport: Transport | None,
        message: ClaimedMessage,
        recipient: str,
        outcome: AttemptOutcome,
        duration: float,
        *,
        code: int | None = None,
        enhanced_status: str | None = None,
        server_text: str | None = None,
        possible_duplicate: bool = False,
    ) -> dict[str, Any]:
        return {
            "message_pk": message.id,
            "attempt": message.attempts + 1,
            "at": time.time(),
            "duration_ms": round(duration * 1000, 3),
            "recipient": recipient,
            "transport": transport.name if transport is not None else "-",
            "outcome": outcome.value,
            "code": code,
            "enhanced_status": enhanced_status,
            "server_text": server_text,
            "possible_duplicate": possible_duplicate,
            "worker": self.worker_name,
        }

    def sent(
        self, transport: Transport, message: ClaimedMessage, result: SendResult, duration: float
    ) -> Outcome:
        now = time.time()
        followup = self._followup(message, result.refused, now)
        followups = [followup] if followup is not None else []
        carried = set(followup.recipients) if followup is not None else set()
        return self._sent(
            transport, message, result, duration, followups=followups, carried=carried, now=now
        )

    def _sent(
        self,
        transport: Transport,
        message: ClaimedMessage,
        result: SendResult,
        duration: float,
        *,
        followups: list[Followup],
        carried: set[str],
        now: float,
        interrupted: frozenset[str] = frozenset(),
    ) -> Outcome:
        rows = []
        for recipient in result.accepted:
            # A message sent in several transactions has a reply for each.
            reply = result.replies.get(recipient, result.reply)
            code, enhanced, text = reply if reply is not None else (None, None, "")
            rows.append(
                self._row(
                    transport,
                    message,
                    recipient,
                    AttemptOutcome.SENT,
                    duration,
                    code=code,
                    enhanced_status=enhanced,
                    server_text=text or None,
                )
            )
        rows += [
            self._row(
                transport,
                message,
                recipient,
                # Carried forward to a follow-up row: deferred, not refused for good.
                # Not reached before a shutdown: interrupted, not refused or deferred.
                AttemptOutcome.INTERRUPTED
                if recipient in interrupted
                else AttemptOutcome.DEFERRED
                if recipient in carried
                else AttemptOutcome.REFUSED,
                duration,
                code=error.code,
                enhanced_status=error.enhanced_status,
                server_text=error.server_text or str(error),
                possible_duplicate=error.possibly_delivered,
            )
            for recipient, error in result.refused.items()
        ]
        self.stats.sent += 1
        self._warn_if_possibly_delivered(message, [*result.refused.values()])
        return Outcome(
            message,
            Completion(id=message.id, status=Status.SENT, due_at=now, sent_at=now),
            rows,
            followups=followups,
        )

    def _followup(
        self, message: ClaimedMessage, refused: Mapping[str, DeliveryError], now: float
    ) -> Followup | None:
        """A 4xx for some recipients must not silently drop them: they get a message of their
        own (same bytes, same Message-ID), due after the usual backoff, while attempts last.
        So do recipients a later transaction of the delivery could not reach because of our
        own configuration: the part already delivered is not sent again, and the stream is
        paused when the follow-up meets the same refusal."""
        later = [
            r for r, e in refused.items() if e.verdict in (Verdict.TRANSIENT, Verdict.CONFIGURATION)
        ]
        attempts = message.attempts + 1
        if not later or attempts >= self.policy.max_attempts:
            return None
        due_at = now + self.policy.backoff(attempts, self._rng).total_seconds()
        return Followup(later, due_at, attempts, reply=refused[later[0]])

    def failed(
        self, transport: Transport, message: ClaimedMessage, error: DeliveryError, duration: float
    ) -> Outcome:
        now = time.time()
        decision = self.policy.decide(
            error,
            attempts=message.attempts + 1,
            created_at=datetime.fromtimestamp(message.created_at, UTC),
            now=datetime.fromtimestamp(now, UTC),
            consecutive_pauses=0,
            rng=self._rng,
        )
        recipients = list(error.refused) or list(message.recipients)

        def rows(outcome: AttemptOutcome, possible_duplicate: bool = False) -> list[dict[str, Any]]:
            out = []
            for recipient in recipients:
                own = error.refused.get(recipient, error)
                # A recipient with an error of its own (a send cut short after the final dot
                # of its transaction) says for itself whether the relay may have it.
                maybe = possible_duplicate if own is error else own.possibly_delivered
                out.append(
                    self._row(
                        transport,
                        message,
                        recipient,
                        outcome,
                        duration,
                        code=own.code,
                        enhanced_status=own.enhanced_status,
                        server_text=own.server_text or str(own),
                        possible_duplicate=maybe,
                    )
                )
            return out

        own_errors = [e for e in error.refused.values() if e is not error]

        if isinstance(decision, PauseStream):
            self.stats.paused += 1  # logged once per stream by the worker, not per message
            return Outcome(
                message,
                Completion(
                    id=message.id,
                    status=Status.QUEUED,
                    due_at=now,
                    attempts_used=0,
                    error=decision.reason,
                    code=error.code,
                    enhanced_status=error.enhanced_status,
                ),
                rows(AttemptOutcome.PAUSED),
                pause=decision,
            )
        if isinstance(decision, RetryAt):
            if decision.possible_duplicate:
                self.stats.possible_duplicates += 1
                logger.warning(
                    "message %s (%s): no reply after the final dot; it may have been delivered "
                    "and will be sent again",
                    message.id,
                    message.message_id,
                )
            else:
                self._warn_if_possibly_delivered(message, own_errors)
            self.stats.deferred += 1
            return Outcome(
                message,
                Completion(
                    id=message.id,
                    status=Status.DEFERRED,
                    due_at=decision.at.timestamp(),
                    error=decision.reason,
                    code=error.code,
                    enhanced_status=error.enhanced_status,
                ),
                rows(AttemptOutcome.DEFERRED, decision.possible_duplicate),
            )
        assert isinstance(decision, GiveUp)  # noqa: S101 - the three decisions are exhaustive
        self.stats.failed += 1
        return Outcome(
            message,
            Completion(
                id=message.id,
                status=Status.FAILED,
                due_at=now,
                error=decision.reason,
                code=error.code,
                enhanced_status=error.enhanced_status,
            ),
            # Silence after the final dot: the relay may have delivered it after all.
            rows(AttemptOutcome.FAILED, error.possibly_delivered),
        )

    def _warn_if_possibly_delivered(
        self, message: ClaimedMessage, errors: list[DeliveryError]
    ) -> None:
        """Count and log a message that some recipients may have got though their attempt
        did not end with the relay's reply (the final dot had left): they will get it again."""
        if not any(e.possibly_delivered for e in errors):
            return
        self.stats.possible_duplicates += 1
        logger.warning(
            "message %s (%s): the send was cut short after the final dot of a transaction, "
            "before the relay's reply; it may have been delivered to those recipients and will "
            "be sent to them again",
            message.id,
            message.message_id,
            extra={"message_pk": message.id, "message_id": message.message_id},
        )

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
