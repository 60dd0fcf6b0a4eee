"""The outcome of a send that ran to its end: sent (to all its recipients or to some), or
failed.

The worker sends; this module decides, through the retry policy, what the result means —
sent, deferred until when, failed, or a pause of the stream — and writes it down as an
:class:`~mailroom.delivery.outcomes.Outcome` for the worker's recorder to commit. Recipients
refused for now while others were accepted are carried to a follow-up row.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mailroom.delivery.outcomes import Followup, Outcome, WorkerStats
from mailroom.delivery.retry import GiveUp, PauseStream, RetryAt, RetryPolicy
from mailroom.errors import DeliveryError, Verdict
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.queries import Completion
from mailroom.outbox.vocabulary import AttemptOutcome, Status
from mailroom.transports import Transport
from mailroom.transports.base import SendResult

__all__ = ["CompletedSendOutcomes"]

# The name these records have always had, whichever outcome module writes them.
logger = logging.getLogger("mailroom.delivery.outcomes")


class CompletedSendOutcomes:
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
        self,
        transport: Transport,
        message: ClaimedMessage,
        result: SendResult,
        duration: float,
        *,
        retry_refused: bool = True,
    ) -> Outcome:
        """Sent to those the relay took. Those it refused for now get a follow-up row, to be
        tried again, unless ``retry_refused`` is false (a send made once, the test email):
        then every refusal is final."""
        now = time.time()
        followup = self._followup(message, result.refused, now) if retry_refused else None
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

        def rows(outcome: AttemptOutcome, possible_duplicate: bool = False) -> list[dict[str, Any]]:
            return self._failure_rows(
                transport, message, error, outcome, duration, possible_duplicate=possible_duplicate
            )

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
        return self.given_up(transport, message, error, duration, reason=decision.reason)

    def given_up(
        self,
        transport: Transport,
        message: ClaimedMessage,
        error: DeliveryError,
        duration: float,
        *,
        reason: str | None = None,
    ) -> Outcome:
        """Failed for good, with ``reason`` (the relay's words when none is given). The
        retry policy gives up through this; a send made once and never retried (the test
        email, whose failure a person is watching for) ends here whatever the error."""
        self.stats.failed += 1
        return Outcome(
            message,
            Completion(
                id=message.id,
                status=Status.FAILED,
                due_at=time.time(),
                error=reason or error.server_text or str(error),
                code=error.code,
                enhanced_status=error.enhanced_status,
            ),
            # Silence after the final dot: the relay may have delivered it after all.
            self._failure_rows(
                transport,
                message,
                error,
                AttemptOutcome.FAILED,
                duration,
                possible_duplicate=error.possibly_delivered,
            ),
        )

    def _failure_rows(
        self,
        transport: Transport,
        message: ClaimedMessage,
        error: DeliveryError,
        outcome: AttemptOutcome,
        duration: float,
        *,
        possible_duplicate: bool,
    ) -> list[dict[str, Any]]:
        """The attempt rows of a failed send: one per recipient the error names (all when
        it names none), each with its own reply when it has one."""
        out = []
        for recipient in list(error.refused) or list(message.recipients):
            own = error.refused.get(recipient, error)
            # A recipient with an error of its own (a send cut short after the final dot of
            # its transaction) says for itself whether the relay may have it.
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
