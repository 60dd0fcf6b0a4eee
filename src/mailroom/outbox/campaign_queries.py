"""Every SQL statement on campaigns themselves (``mailroom_campaigns``): stored, read,
locked for a change of state, listed, and the ones due to run. Their ledgers' statements are in
:mod:`~mailroom.outbox.ledger_queries` and :mod:`~mailroom.outbox.ledger_state_queries`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    delete,
    insert,
    select,
    update,
)

from mailroom.outbox.schema import campaigns
from mailroom.outbox.vocabulary import CampaignStatus

__all__ = [
    "campaign_row",
    "campaigns_to_run",
    "delete_campaign",
    "insert_campaign",
    "list_campaigns",
    "lock_campaign",
    "update_campaign",
]


def insert_campaign(connection: Connection, values: Mapping[str, Any]) -> int:
    result = connection.execute(insert(campaigns).values(**values).returning(campaigns.c.id))
    return int(result.scalar_one())


def campaign_row(connection: Connection, campaign_id: int) -> Row[Any] | None:
    return connection.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()


def lock_campaign(connection: Connection, campaign_id: int) -> Row[Any] | None:
    """The campaign's row, locked until the transaction ends (PostgreSQL ``FOR UPDATE``; on
    SQLite the transaction's write lock already keeps every other writer out)."""
    query = select(campaigns).where(campaigns.c.id == campaign_id)
    if connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return connection.execute(query).first()


def update_campaign(
    connection: Connection,
    campaign_id: int,
    values: Mapping[str, Any],
    *,
    only_if: Sequence[CampaignStatus] | None = None,
) -> bool:
    """Whether the campaign was changed (``only_if``: only while in one of these statuses)."""
    statement = update(campaigns).where(campaigns.c.id == campaign_id).values(**values)
    if only_if is not None:
        statement = statement.where(campaigns.c.status.in_([s.value for s in only_if]))
    return connection.execute(statement).rowcount == 1


def delete_campaign(connection: Connection, campaign_id: int) -> None:
    connection.execute(delete(campaigns).where(campaigns.c.id == campaign_id))


def list_campaigns(connection: Connection, *, limit: int = 100) -> list[Row[Any]]:
    query = select(campaigns).order_by(campaigns.c.id.desc()).limit(limit)
    return list(connection.execute(query))


def campaigns_to_run(connection: Connection, now: float) -> list[Row[Any]]:
    """Campaigns sending, and scheduled ones whose time has come, oldest first."""
    query = (
        select(campaigns.c.id, campaigns.c.status, campaigns.c.stream)
        .where(
            (campaigns.c.status == CampaignStatus.SENDING.value)
            | (
                (campaigns.c.status == CampaignStatus.SCHEDULED.value)
                & (campaigns.c.send_at <= now)
            )
        )
        .order_by(campaigns.c.id)
    )
    return list(connection.execute(query))
