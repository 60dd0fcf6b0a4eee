"""Pause, resume, cancel, and retry the failed recipients of a campaign.

Each is one transaction that locks the campaign's row first, so it is ordered with every
batch (:mod:`~mailroom.campaigns.batches` locks it too, and writes only while the campaign is
sending): a batch committed before a pause has its messages taken back by the pause; one
committing after it finds the campaign paused and writes nothing.

A pause takes the campaign's messages still waiting in the outbox back out of it, and their
recipients return to pending, to be composed again at the resume; a message a worker already
holds is sent (it may be on the wire). A cancel does the same, and every recipient not sent is
recorded as skipped for good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from mailroom.campaigns.store import Campaign
from mailroom.errors import CampaignError, CampaignNotFoundError
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import ledger_queries as ledger
from mailroom.outbox import ledger_state_queries as ledger_state
from mailroom.outbox.vocabulary import CampaignStatus, RecipientStatus

__all__ = ["ControlOutcome", "cancel", "pause", "resume", "retry_failed"]

_PAUSABLE = (CampaignStatus.SENDING, CampaignStatus.SCHEDULED)
_CANCELLABLE = (
    CampaignStatus.DRAFT,
    CampaignStatus.SCHEDULED,
    CampaignStatus.SENDING,
    CampaignStatus.PAUSED,
)


@dataclass(frozen=True, slots=True)
class ControlOutcome:
    campaign: Campaign
    withdrawn: int = 0
    """Messages taken back out of the outbox (pause, cancel) or queued again (retry)."""


def pause(engine: Engine, campaign_id: int, *, reason: str | None = None) -> ControlOutcome:
    """Stop sending; ``reason`` says why when it is not by hand (an error rate)."""
    now = time.time()
    with engine.begin() as connection:
        campaign = _locked(connection, campaign_id)
        if campaign.status not in _PAUSABLE:
            raise CampaignError(
                f"campaign {campaign_id} is {campaign.status.value}: only one that is sending "
                "or scheduled can be paused"
            )
        withdrawn = ledger_state.withdraw_waiting(
            connection, campaign_id, to=RecipientStatus.PENDING, reason=None, now=now
        )
        q.update_campaign(
            connection,
            campaign_id,
            {
                "status": CampaignStatus.PAUSED.value,
                "paused_reason": reason,
                "paused_from": campaign.status.value,
                "updated_at": now,
            },
        )
    return ControlOutcome(_get(engine, campaign_id), withdrawn)


def resume(engine: Engine, campaign_id: int) -> ControlOutcome:
    """Go on from where the pause left it: the fan-out from its checkpoint, the pending
    recipients composed again."""
    now = time.time()
    with engine.begin() as connection:
        campaign = _locked(connection, campaign_id)
        if campaign.status is not CampaignStatus.PAUSED:
            raise CampaignError(
                f"campaign {campaign_id} is {campaign.status.value}: only a paused one can be "
                "resumed"
            )
        # A campaign paused before its time goes back to waiting for it.
        later = (
            campaign.paused_from == CampaignStatus.SCHEDULED.value
            and campaign.send_at is not None
            and campaign.send_at > now
        )
        q.update_campaign(
            connection,
            campaign_id,
            {
                "status": (CampaignStatus.SCHEDULED if later else CampaignStatus.SENDING).value,
                "paused_reason": None,
                "paused_from": None,
                "started_at": None if later else (campaign.started_at or now),
                # Its error rate is judged afresh: the failures that paused it are not held
                # against it again at once.
                "resumed_at": now,
                "updated_at": now,
            },
        )
    return ControlOutcome(_get(engine, campaign_id))


def cancel(engine: Engine, campaign_id: int) -> ControlOutcome:
    """Stop for good: messages waiting are taken back, and nobody not yet sent it ever
    will be (their ledger rows say skipped, "cancelled")."""
    now = time.time()
    with engine.begin() as connection:
        campaign = _locked(connection, campaign_id)
        if campaign.status not in _CANCELLABLE:
            raise CampaignError(
                f"campaign {campaign_id} is {campaign.status.value}: it cannot be cancelled"
            )
        withdrawn = ledger_state.withdraw_waiting(
            connection, campaign_id, to=RecipientStatus.SKIPPED, reason="cancelled", now=now
        )
        ledger.settle_pending(connection, campaign_id, RecipientStatus.SKIPPED, "cancelled", now)
        q.update_campaign(
            connection,
            campaign_id,
            {
                "status": CampaignStatus.CANCELLED.value,
                "finished_at": now,
                "updated_at": now,
            },
        )
    return ControlOutcome(_get(engine, campaign_id), withdrawn)


def retry_failed(engine: Engine, campaign_id: int) -> ControlOutcome:
    """Queue the failed recipients' messages again (listmonk's #2221: one action, and only
    them); a finished campaign is sending again until they have their outcome."""
    now = time.time()
    with engine.begin() as connection:
        campaign = _locked(connection, campaign_id)
        if campaign.status is CampaignStatus.PAUSED:
            raise CampaignError(
                f"campaign {campaign_id} is paused: resume it first (its failed recipients "
                "would be sent while it is paused)"
            )
        if campaign.status not in {CampaignStatus.SENDING, CampaignStatus.FINISHED}:
            raise CampaignError(
                f"campaign {campaign_id} is {campaign.status.value}: it has no failed "
                "recipients to retry"
            )
        again = ledger_state.retry_failed(connection, campaign_id, now)
        if again and campaign.status is CampaignStatus.FINISHED:
            q.update_campaign(
                connection,
                campaign_id,
                {"status": CampaignStatus.SENDING.value, "finished_at": None, "updated_at": now},
            )
    return ControlOutcome(_get(engine, campaign_id), again)


def _locked(connection: Connection, campaign_id: int) -> Campaign:
    row = q.lock_campaign(connection, campaign_id)
    if row is None:
        raise CampaignNotFoundError(campaign_id)
    return Campaign.from_row(row)


def _get(engine: Engine, campaign_id: int) -> Campaign:
    with engine.connect() as connection:
        row = q.campaign_row(connection, campaign_id)
    if row is None:
        raise CampaignNotFoundError(campaign_id)
    return Campaign.from_row(row)
