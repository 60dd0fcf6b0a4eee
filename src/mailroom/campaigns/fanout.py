"""The fan-out: a campaign's audience into its ledger, a page at a time, each page in one
transaction with the checkpoint it moves.

The checkpoint is the audience's key of the last recipient whose ledger row is committed, and
it moves in the same transaction as those rows: a crash between two pages loses nothing and
repeats nothing (what listmonk's users met, a position moved when a batch is fetched rather
than stored, cannot happen). Doing a page twice adds nobody twice either: the ledger holds
one row per campaign and address.

A mailing list's page goes from contacts to ledger inside the database, no row through
Python; an application's audience is asked for its page first, outside the transaction, and
the page is stored only if the checkpoint is still where it was when it was asked for (another
worker may have done it meanwhile).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine

from mailroom.campaigns.audiences import LIST_PREFIX, AudienceMember, audience_pages
from mailroom.campaigns.store import Campaign, list_id_of
from mailroom.errors import CampaignError, CampaignNotFoundError, MessageError
from mailroom.message import Address
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import ledger_queries as ledger
from mailroom.outbox.vocabulary import CampaignStatus, RecipientStatus

__all__ = ["FANOUT_PAGE", "FanOutStep", "fan_out_page"]

logger = logging.getLogger(__name__)

FANOUT_PAGE = 10_000
"""Recipients per page: one transaction, one checkpoint."""


@dataclass(frozen=True, slots=True)
class FanOutStep:
    added: int
    """Recipients in the page (some may have been in the ledger already)."""
    done: bool
    """The audience has no more."""


def fan_out_page(engine: Engine, campaign_id: int, *, page: int = FANOUT_PAGE) -> FanOutStep:
    """The next page of the campaign's audience into its ledger; nothing if it is not
    sending or its fan-out is done."""
    with engine.connect() as connection:
        row = q.campaign_row(connection, campaign_id)
    if row is None:
        raise CampaignNotFoundError(campaign_id)
    campaign = Campaign.from_row(row)
    if campaign.status is not CampaignStatus.SENDING or campaign.fanout_done:
        return FanOutStep(0, campaign.fanout_done)
    if campaign.audience.startswith(LIST_PREFIX):
        return _list_page(engine, campaign_id, page)
    return _app_page(engine, campaign, page)


def _list_page(engine: Engine, campaign_id: int, page: int) -> FanOutStep:
    now = time.time()
    with engine.begin() as connection:
        campaign = _sending(connection, campaign_id)
        if campaign is None:
            return FanOutStep(0, True)
        list_name = campaign.list_name or ""
        list_id = list_id_of(connection, list_name)
        if list_id is None:
            # The list was deleted under a sending campaign: who is in the ledger goes on
            # getting it; nobody more can be found.
            logger.warning("campaign %d: its list %r is gone", campaign_id, list_name)
            _finish_fan_out(connection, campaign_id, campaign.fanout_checkpoint, now)
            return FanOutStep(0, True)
        after = int(campaign.fanout_checkpoint or 0)
        count, last = ledger.fan_out_list_page(
            connection, campaign_id, list_id, after_id=after, limit=page, now=now
        )
        done = count < page
        q.update_campaign(
            connection,
            campaign_id,
            {
                "fanout_checkpoint": last if last is not None else campaign.fanout_checkpoint,
                "fanout_done": done,
                "updated_at": now,
            },
        )
    return FanOutStep(count, done)


def _app_page(engine: Engine, campaign: Campaign, page: int) -> FanOutStep:
    pages = audience_pages(campaign.audience)
    if pages is None:
        # Not registered in this process: another worker (the application's own) will.
        logger.debug("campaign %d: audience %s not here", campaign.id, campaign.audience)
        return FanOutStep(0, False)
    after = campaign.fanout_checkpoint
    members = list(pages(after, page))
    if len(members) > page:
        raise CampaignError(
            f"audience {campaign.audience!r} gave {len(members)} members when asked for {page}"
        )
    if members and after is not None and members[0].key <= after:
        raise CampaignError(
            f"audience {campaign.audience!r} gave {members[0].key!r} after {after!r}: its "
            "pages must start after the key they are given"
        )
    entries, invalid = _entries(members)
    now = time.time()
    with engine.begin() as connection:
        current = _sending(connection, campaign.id)
        if current is None or current.fanout_checkpoint != after:
            return FanOutStep(0, current is None)  # another worker stored this page meanwhile
        ledger.insert_ledger_entries(connection, campaign.id, entries, now)
        ledger.insert_ledger_entries(
            connection, campaign.id, invalid, now, status=RecipientStatus.SKIPPED
        )
        done = len(members) < page
        last = members[-1].key if members else after
        q.update_campaign(
            connection,
            campaign.id,
            {"fanout_checkpoint": last, "fanout_done": done, "updated_at": now},
        )
    return FanOutStep(len(members), done)


def _entries(
    members: list[AudienceMember],
) -> tuple[list[ledger.LedgerEntry], list[ledger.LedgerEntry]]:
    """The members as ledger entries, and those whose address cannot be mailed (kept in the
    ledger as skipped, so the count says they were in the audience)."""
    good: list[ledger.LedgerEntry] = []
    bad: list[ledger.LedgerEntry] = []
    previous: str | None = None
    for member in members:
        if previous is not None and member.key <= previous:
            raise CampaignError(
                f"audience pages must come in key order; {member.key!r} came after {previous!r}"
            )
        previous = member.key
        try:
            address = Address.parse(member.email, "email").addr_spec.lower()
        except (MessageError, TypeError, AttributeError, ValueError):
            # Kept as skipped under a name no address can have, one per member: counted as
            # in the audience, never mistaken for (or merged with) a real address.
            key = _text(member.key)
            bad.append(ledger.LedgerEntry(key, f"invalid:{key}"[:320], None, None))
            continue
        good.append(
            ledger.LedgerEntry(_text(member.key), address, _name(member.name), member.attributes)
        )
    return good, bad


def _sending(connection: Connection, campaign_id: int) -> Campaign | None:
    row = q.lock_campaign(connection, campaign_id)
    if row is None:
        return None
    campaign = Campaign.from_row(row)
    if campaign.status is not CampaignStatus.SENDING or campaign.fanout_done:
        return None
    return campaign


def _finish_fan_out(
    connection: Connection, campaign_id: int, checkpoint: object, now: float
) -> None:
    q.update_campaign(
        connection,
        campaign_id,
        {"fanout_checkpoint": checkpoint, "fanout_done": True, "updated_at": now},
    )


def _text(value: str) -> str:
    # NUL is the one character a PostgreSQL text column refuses: an application's data may
    # hold one, and it must not wedge the campaign.
    return value.replace("\x00", "")


def _name(value: str | None) -> str | None:
    return _text(value) if isinstance(value, str) else None
