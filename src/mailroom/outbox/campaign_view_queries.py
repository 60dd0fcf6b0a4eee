"""The reads the campaign pages of the admin make beside the library's own
(:mod:`~mailroom.outbox.campaign_queries`): the mailing lists to choose from, a list's size,
many campaigns' counts at once, the URLs behind a campaign's tracked links, the span of its
events for the chart, and its recipients who unsubscribed since it started.

Kept apart from ``campaign_queries`` (the ledger's writes and the runner's reads), which is
long enough already; every statement is still here, none in a route.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from mailroom.outbox.ledger_state_queries import effective_status
from mailroom.outbox.schema import campaign_recipients as ledger
from mailroom.outbox.schema import consent_log, contacts, events, mailing_lists, messages
from mailroom.outbox.vocabulary import ConsentAction, EventType, RecipientStatus

__all__ = [
    "CHART_EVENTS",
    "ListChoice",
    "event_span",
    "first_tracked_links",
    "list_choices",
    "list_size",
    "recipient_counts_by_campaign",
    "unsubscribed_since",
]

CHART_EVENTS = (EventType.SENT, EventType.FAILED, EventType.OPENED, EventType.CLICKED)
"""The events the campaign page's chart shows over time (those of ``sends_over_time``)."""


@dataclass(frozen=True, slots=True)
class ListChoice:
    """A mailing list as the campaign editor offers it."""

    name: str
    contacts: int


def list_choices(connection: Connection, *, limit: int = 1000) -> list[ListChoice]:
    """The mailing lists by name, each with its number of contacts (counted on the
    ``(list_id, id)`` index)."""
    size = (
        select(func.count())
        .select_from(contacts)
        .where(contacts.c.list_id == mailing_lists.c.id)
        .scalar_subquery()
    )
    query = select(mailing_lists.c.name, size).order_by(mailing_lists.c.name).limit(limit)
    return [ListChoice(str(name), int(count)) for name, count in connection.execute(query)]


def list_size(connection: Connection, name: str) -> int | None:
    """How many contacts the list ``name`` has; ``None`` when there is no such list."""
    found = connection.execute(
        select(mailing_lists.c.id).where(mailing_lists.c.name == name)
    ).scalar_one_or_none()
    if found is None:
        return None
    count = connection.execute(
        select(func.count()).select_from(contacts).where(contacts.c.list_id == found)
    ).scalar_one()
    return int(count)


def recipient_counts_by_campaign(
    connection: Connection, campaign_ids: Sequence[int]
) -> dict[int, dict[RecipientStatus, int]]:
    """For each of ``campaign_ids``, its recipients by :class:`RecipientStatus`, as
    :func:`~mailroom.outbox.campaign_queries.recipient_counts` reads them, in one statement."""
    counts: dict[int, dict[RecipientStatus, int]] = {
        campaign_id: dict.fromkeys(RecipientStatus, 0) for campaign_id in campaign_ids
    }
    if not campaign_ids:
        return counts
    effective = effective_status().label("effective")
    query = (
        select(ledger.c.campaign_id, effective, func.count())
        .select_from(ledger.outerjoin(messages, messages.c.id == ledger.c.message_pk))
        .where(ledger.c.campaign_id.in_(list(campaign_ids)))
        .group_by(ledger.c.campaign_id, effective)
    )
    for campaign_id, status, count in connection.execute(query):
        counts[int(campaign_id)][RecipientStatus(status)] += int(count)
    return counts


def first_tracked_links(connection: Connection, campaign_id: int) -> list[str] | None:
    """The URLs click tracking rewrote in the campaign's first queued message, by link index;
    ``None`` when it has none yet or its stream tracks no clicks.

    Every recipient's message is made from the same body, so link ``n`` is the same link in
    each; only a URL built from a merge field differs between recipients, and the first
    message's shows what it looks like. Read through the ``(campaign_id, status, id)`` index:
    one row, however large the campaign."""
    query = (
        select(messages.c.tracked_links)
        .select_from(ledger.join(messages, messages.c.id == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            ledger.c.status == RecipientStatus.QUEUED.value,
        )
        .order_by(ledger.c.id)
        .limit(1)
    )
    value: Any = connection.execute(query).scalar_one_or_none()
    if isinstance(value, str):  # a driver that hands JSON back as text
        value = json.loads(value)
    if not isinstance(value, list):
        return None
    return [str(url) for url in value]


def event_span(connection: Connection, campaign_id: int) -> tuple[float, float] | None:
    """The times of the first and the last of the campaign's chart events; ``None`` before
    any: the chart's buckets are sized to fit them."""
    query = (
        select(func.min(events.c.at), func.max(events.c.at))
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.in_([kind.value for kind in CHART_EVENTS]),
        )
    )
    first, last = connection.execute(query).one()
    if first is None or last is None:
        return None
    return float(first), float(last)


def unsubscribed_since(
    connection: Connection, campaign_id: int, scopes: Sequence[str], since: float
) -> int:
    """How many of the campaign's recipients unsubscribed from one of ``scopes`` (its list's,
    and ``all``) at ``since`` or later, as the consent log records it.

    An unsubscribe link names a recipient and a scope, not a message, so its event has no
    message to tie it to a campaign (``campaign_stats`` counts only those that have one): this
    reads the consent log instead. A recipient of two campaigns of the same list who then
    unsubscribes counts in both."""
    query = (
        select(func.count(func.distinct(consent_log.c.recipient)))
        .select_from(
            consent_log.join(
                ledger,
                (ledger.c.address == consent_log.c.recipient)
                & (ledger.c.campaign_id == campaign_id),
            )
        )
        .where(
            consent_log.c.action == ConsentAction.UNSUBSCRIBED.value,
            consent_log.c.scope.in_(list(scopes)),
            consent_log.c.at >= since,
        )
    )
    return int(connection.execute(query).scalar_one())
