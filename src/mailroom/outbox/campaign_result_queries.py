"""What a campaign's recipients did, from the events of its messages: opens, clicks per
link, unsubscribes and bounces, counted in all and per recipient, and over time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    cast,
    func,
    or_,
    select,
)

from mailroom.outbox.schema import campaign_recipients as ledger
from mailroom.outbox.schema import events
from mailroom.outbox.vocabulary import EventType

__all__ = ["EventTally", "event_tallies", "recipients_by_type", "sends_over_time"]


@dataclass(frozen=True, slots=True)
class EventTally:
    """One kind of event of a campaign's messages: how many, and from how many recipients."""

    type: str
    label: str | None
    link_index: int | None
    total: int
    unique: int


def event_tallies(connection: Connection, campaign_id: int) -> list[EventTally]:
    """Every event type (with its hit label and link) of the campaign's messages, counted in
    all and per recipient: opens, clicks per link, unsubscribes, bounces, complaints."""
    query = (
        select(
            events.c.type,
            events.c.label,
            events.c.link_index,
            func.count(),
            func.count(func.distinct(events.c.message_pk)),
        )
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.not_in([EventType.QUEUED.value]),
        )
        .group_by(events.c.type, events.c.label, events.c.link_index)
    )
    return [
        EventTally(kind, label, link, int(total), int(unique))
        for kind, label, link, total, unique in connection.execute(query)
    ]


def recipients_by_type(
    connection: Connection, campaign_id: int, labels: Iterable[str | None]
) -> dict[str, int]:
    """For each event type, how many of the campaign's recipients have one under any of
    ``labels`` (``None``: unlabelled), each counted once however many hits, labels and links:
    who clicked at all, where :func:`event_tallies` counts who clicked each link."""
    wanted = set(labels)
    named = [label for label in wanted if label is not None]
    label_matches: ColumnElement[bool] = events.c.label.in_(named)
    if None in wanted:
        label_matches = or_(label_matches, events.c.label.is_(None))
    query = (
        select(events.c.type, func.count(func.distinct(events.c.message_pk)))
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.not_in([EventType.QUEUED.value]),
            label_matches,
        )
        .group_by(events.c.type)
    )
    return {kind: int(count) for kind, count in connection.execute(query)}


def sends_over_time(
    connection: Connection, campaign_id: int, bucket_seconds: float
) -> list[tuple[float, str, int]]:
    """``(bucket start, event type, count)`` of the campaign's sent, failed, opened and clicked
    events, in buckets of ``bucket_seconds``, oldest first: the campaign page's chart."""
    if connection.dialect.name == "postgresql":
        # PostgreSQL's cast to integer rounds to the nearest (half the events would land in
        # the bucket after theirs); floor() is what is meant.
        index: Any = func.floor(events.c.at / bucket_seconds)
    else:
        # SQLite's cast truncates, the floor for times after 1970; its floor() is not in
        # every build.
        index = cast(events.c.at / bucket_seconds, Integer)
    bucket = (index * bucket_seconds).label("bucket")
    query = (
        select(bucket, events.c.type, func.count())
        .select_from(ledger.join(events, events.c.message_pk == ledger.c.message_pk))
        .where(
            ledger.c.campaign_id == campaign_id,
            events.c.type.in_(
                [
                    EventType.SENT.value,
                    EventType.FAILED.value,
                    EventType.OPENED.value,
                    EventType.CLICKED.value,
                ]
            ),
        )
        .group_by(bucket, events.c.type)
        .order_by(bucket)
    )
    return [(float(start), kind, int(count)) for start, kind, count in connection.execute(query)]
