"""A batch: up to ``EMAILS_PER_TASK`` pending recipients of a campaign, composed and put in the
outbox in one transaction with their ledger rows.

The work is split so the write lock is held only for the writes: the pending rows are read,
checked against the suppression list and composed with no transaction open; then one
transaction locks the campaign (it must still be sending: a pause or cancel that committed
first wins), takes those of the rows that are still pending (:func:`take_pending`: another
worker, a batch run twice or a Celery task delivered twice may have taken some), inserts the
messages of only those, and marks them queued with their message ids. So a recipient's
message is in the outbox exactly when their ledger row says ``queued``, whatever runs twice
or dies half-way.

Suppressed and unsubscribed recipients are recorded as such here, and checked again when
their message comes due (the worker's check at claim, the message's consent facts naming
``all`` and the list's scope): an opt-out between the two stops the mail either way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from mailroom.campaigns.composer import CampaignComposer
from mailroom.compose.tracking import apply_tracking
from mailroom.consent.scopes import SCOPE_ALL
from mailroom.consent.suppression import suppressed_among
from mailroom.errors import MessageError
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import ledger_queries as ledger
from mailroom.outbox import queries
from mailroom.outbox.message_insert import prepare_insert
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus, ConsentFacts, RecipientStatus

__all__ = ["BatchOutcome", "queue_batch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    queued: int = 0
    suppressed: int = 0
    skipped: int = 0
    taken_by_others: int = 0
    """Rows that were pending when read and were not any more at the commit."""
    stopped: bool = False
    """The campaign was no longer sending: nothing was written."""

    @property
    def settled(self) -> int:
        return self.queued + self.suppressed + self.skipped


def queue_batch(outbox: Outbox, composer: CampaignComposer, *, size: int) -> BatchOutcome:
    """The next ``size`` pending recipients of ``composer``'s campaign into the outbox."""
    campaign = composer.campaign
    engine: Engine = outbox.engine
    now = time.time()
    scopes = (SCOPE_ALL, composer.scope)
    with engine.connect() as connection:
        pending = ledger.pending_recipients(connection, campaign.id, size)
        if not pending:
            return BatchOutcome()
        suppressed = suppressed_among(connection, [r.address for r in pending], scopes, now)
    consent = ConsentFacts(scopes, False)
    rows: list[tuple[int, dict[str, object]]] = []
    settled: list[tuple[int, RecipientStatus, str | None]] = []
    for recipient in pending:
        reason = suppressed.get(recipient.address)
        if reason is not None:
            settled.append((recipient.id, RecipientStatus.SUPPRESSED, reason.value))
            continue
        try:
            message = composer.compose(recipient)
            message, links = apply_tracking(message, outbox.settings, campaign.stream)
            row = outbox.message_row(
                message, stream=campaign.stream, now=now, consent=consent, tracked_links=links
            )
        except MessageError as exc:
            # Their data cannot make a message (a merge field their attributes lack): said
            # in the ledger, never the others' loss.
            settled.append((recipient.id, RecipientStatus.SKIPPED, str(exc)[:500]))
            continue
        rows.append((recipient.id, row))
    return _commit(outbox, campaign.id, rows, settled, read=[r.id for r in pending], now=now)


def _commit(
    outbox: Outbox,
    campaign_id: int,
    rows: list[tuple[int, dict[str, object]]],
    settled: list[tuple[int, RecipientStatus, str | None]],
    *,
    read: list[int],
    now: float,
) -> BatchOutcome:
    engine = outbox.engine
    prepared = prepare_insert([row for _, row in rows], engine.dialect) if rows else None
    with engine.begin() as connection:
        locked = q.lock_campaign(connection, campaign_id)
        if locked is None or locked.status != CampaignStatus.SENDING.value:
            return BatchOutcome(stopped=True)
        still = ledger.take_pending(connection, read)
        if len(still) < len(read):
            # Someone else got there first for some: only the rest are ours to write.
            if any(ledger_id not in still for ledger_id, _ in rows):
                rows = [(ledger_id, row) for ledger_id, row in rows if ledger_id in still]
                prepared = None
            settled = [entry for entry in settled if entry[0] in still]
        message_ids = queries.insert_messages(connection, [row for _, row in rows], prepared)
        queued = [
            (ledger_id, message_pk)
            for (ledger_id, _), message_pk in zip(rows, message_ids, strict=True)
            if message_pk is not None
        ]
        ledger.mark_queued(connection, queued, now)
        ledger.mark_settled(connection, settled, now)
    return BatchOutcome(
        queued=len(queued),
        suppressed=sum(1 for _, status, _ in settled if status is RecipientStatus.SUPPRESSED),
        skipped=sum(1 for _, status, _ in settled if status is RecipientStatus.SKIPPED),
        taken_by_others=len(read) - len(still),
    )
