"""What one delivery attempt comes to: the message's next state and its send-log rows.

An :class:`Outcome` waits for the worker's recorder to commit it; :class:`WorkerStats` counts
what the run did. The worker's :class:`~mailroom.delivery.unfinished_sends.OutcomeBuilder`
makes the outcomes and counts them: those of a send that ran to its end in
:mod:`mailroom.delivery.completed_sends` (where the retry policy decides what a failure
means), those of one that did not in :mod:`mailroom.delivery.unfinished_sends`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailroom.delivery.retry import PauseStream
from mailroom.errors import DeliveryError
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.queries import Completion

__all__ = ["Followup", "Outcome", "WorkerStats"]


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
