"""A campaign's progress, derived each time from its ledger and its messages (DESIGN 13):
nothing is counted beside them, so no crash, restart or retry can make a figure drift from
what happened."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from mailroom.outbox import ledger_state_queries as ledger_state
from mailroom.outbox.vocabulary import RecipientStatus

__all__ = ["Progress", "progress"]


@dataclass(frozen=True, slots=True)
class Progress:
    """Recipients of a campaign by where they are."""

    pending: int
    queued: int
    sent: int
    failed: int
    suppressed: int
    skipped: int

    @property
    def total(self) -> int:
        """Everyone in the ledger so far (more may come while the fan-out goes on)."""
        return self.pending + self.queued + self.settled

    @property
    def settled(self) -> int:
        """Recipients with an outcome: sent, failed, suppressed or skipped."""
        return self.sent + self.failed + self.suppressed + self.skipped

    @property
    def remaining(self) -> int:
        return self.pending + self.queued

    @property
    def failure_rate(self) -> float:
        """Failed, of the messages that have an outcome from the relay."""
        tried = self.sent + self.failed
        return self.failed / tried if tried else 0.0

    def as_dict(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "queued": self.queued,
            "sent": self.sent,
            "failed": self.failed,
            "suppressed": self.suppressed,
            "skipped": self.skipped,
            "total": self.total,
        }


def progress(connection: Connection, campaign_id: int) -> Progress:
    counts = ledger_state.recipient_counts(connection, campaign_id)
    return Progress(
        pending=counts[RecipientStatus.PENDING],
        queued=counts[RecipientStatus.QUEUED],
        sent=counts[RecipientStatus.SENT],
        failed=counts[RecipientStatus.FAILED],
        suppressed=counts[RecipientStatus.SUPPRESSED],
        skipped=counts[RecipientStatus.SKIPPED],
    )
