"""The worker's claim and sweep: what it runs in its database thread to take work.

A claim leases a batch of due messages (most urgent first) to this worker until
``WORKER_LEASE_SECONDS`` from now; a sweep gives back those whose worker's lease ran out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.consent.suppression import suppressed_for_messages
from mailroom.delivery.database_thread import DatabaseThread
from mailroom.delivery.outcomes import Outcome
from mailroom.delivery.unfinished_sends import OutcomeBuilder
from mailroom.errors import DatabaseBusyError
from mailroom.outbox import lease_queries
from mailroom.outbox.lease_queries import ClaimedMessage

__all__ = ["Claims"]

# The worker's log, whichever of its modules writes the record.
logger = logging.getLogger("mailroom.delivery.worker")


class Claims:
    """The claims and sweeps of one worker (its name and lease token)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        name: str,
        lease_token: str,
        outcomes: OutcomeBuilder,
        now: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.name = name
        self.lease_token = lease_token
        self.outcomes = outcomes
        self._now = now

    async def sweep_expired(self, db: DatabaseThread, now: float, until: asyncio.Event) -> bool:
        """Re-queue messages whose worker's lease ran out; whether the sweep was done."""
        try:
            await db.call(self.sweep, now, until=until)
        except DatabaseBusyError as error:  # tried again on the next round
            logger.warning("worker %s: could not sweep: %s", self.name, error)
            return False
        return True

    def sweep(self, now: float) -> list[tuple[int, str]]:
        with self.engine.begin() as connection:
            requeued = lease_queries.recover_expired_leases(connection, now)
            # Logged before the commit, not after: a worker killed between the two would
            # otherwise leave a re-queue, and so a possible duplicate, that no line names. A
            # commit that then fails logs a message that the next sweep logs again.
            for message_pk, message_id in requeued:
                logger.warning(
                    "re-queued message %s %s: its worker's lease expired; if that worker "
                    "sent it before dying, this will be a duplicate",
                    message_pk,
                    message_id,
                    extra={"message_pk": message_pk, "message_id": message_id},
                )
        return requeued

    def claim(self, limit: int, max_bytes: int) -> tuple[list[ClaimedMessage], list[Outcome]]:
        """Due messages to send, and outcomes for those whose every recipient is suppressed."""
        now = self._now()
        with self.engine.begin() as connection:
            claimed = lease_queries.claim_due(
                connection,
                now=now,
                limit=limit,
                lease_token=self.lease_token,
                lease_until=now + self.settings.WORKER_LEASE_SECONDS,
                max_bytes=max_bytes,
            )
            # Checked now, not only at enqueue: an unsubscribe or a bounce may have come in
            # since the message was queued. The claimed rows carry what the check needs.
            suppressed = suppressed_for_messages(connection, claimed, now)
        if not suppressed:
            return claimed, []
        deliverable, withheld = [], []
        for message in claimed:
            reasons = suppressed.get(message.id, {})
            remaining = tuple(r for r in message.recipients if r not in reasons)
            if remaining:
                deliverable.append(message._replace(recipients=remaining))
            else:
                withheld.append(self.outcomes.suppressed(message, reasons))
        return deliverable, withheld
