"""A campaign's results, derived from its ledger, its messages and their events (DESIGN 13):
sent, failed and bounced; opens in all and per recipient, with privacy-proxy opens apart
(Apple Mail Privacy Protection fetches every image: an open it reports says the mail arrived,
not that anyone read it); clicks per link; unsubscribes; and the same over time for a chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection

from mailroom.campaigns.composer import campaign_scope
from mailroom.campaigns.progress import Progress, progress
from mailroom.consent.scopes import SCOPE_ALL
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import campaign_result_queries as results
from mailroom.outbox import campaign_view_queries as views
from mailroom.outbox.vocabulary import EventType, HitLabel

__all__ = ["CampaignStats", "LinkClicks", "TimePoint", "campaign_stats", "timeline"]


@dataclass(frozen=True, slots=True)
class LinkClicks:
    link_index: int
    total: int
    unique: int
    """Recipients who followed it (people, not scanners)."""
    scanner: int
    """Follows that look like a link scanner's (kept, counted apart)."""


@dataclass(frozen=True, slots=True)
class CampaignStats:
    recipients: Progress
    opens_total: int
    opens_unique: int
    """Recipients who opened it, by a person as far as can be told."""
    proxy_opens_total: int
    proxy_opens_unique: int
    """Recipients whose mail provider's proxy fetched the pixel (Apple MPP, Gmail's proxy)."""
    clicks_total: int
    clicks_unique: int
    """Recipients who followed any of its links (people, not scanners)."""
    links: list[LinkClicks] = field(default_factory=list)
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "recipients": self.recipients.as_dict(),
            "opens": {"total": self.opens_total, "unique": self.opens_unique},
            "proxy_opens": {"total": self.proxy_opens_total, "unique": self.proxy_opens_unique},
            "clicks": {
                "total": self.clicks_total,
                "unique": self.clicks_unique,
                "links": [
                    {
                        "link_index": link.link_index,
                        "total": link.total,
                        "unique": link.unique,
                        "scanner": link.scanner,
                    }
                    for link in self.links
                ],
            },
            "unsubscribed": self.unsubscribed,
            "bounced": self.bounced,
            "complained": self.complained,
        }


@dataclass(frozen=True, slots=True)
class TimePoint:
    at: float
    """The bucket's start (epoch seconds)."""
    sent: int = 0
    failed: int = 0
    opened: int = 0
    clicked: int = 0


def campaign_stats(connection: Connection, campaign_id: int) -> CampaignStats:
    tallies = results.event_tallies(connection, campaign_id)

    people = {HitLabel.HUMAN.value, None}
    # People's recipients are counted apart, not summed from the tallies: those are per
    # label and per link, and whoever clicked two links is one recipient who clicked.
    by_people = results.recipients_by_type(connection, campaign_id, people)

    def summed(kind: EventType, labels: set[str | None], *, unique: bool = False) -> int:
        # Exact for one label of a type without links (a proxy's opens, bounces).
        return sum(
            t.unique if unique else t.total
            for t in tallies
            if t.type == kind.value and t.label in labels
        )

    links: dict[int, list[int]] = {}
    for tally in tallies:
        if tally.type != EventType.CLICKED.value or tally.link_index is None:
            continue
        entry = links.setdefault(tally.link_index, [0, 0, 0])
        if tally.label == HitLabel.SCANNER.value:
            entry[2] += tally.total
        else:
            entry[0] += tally.total
            entry[1] += tally.unique
    return CampaignStats(
        recipients=progress(connection, campaign_id),
        opens_total=summed(EventType.OPENED, people),
        opens_unique=by_people.get(EventType.OPENED.value, 0),
        proxy_opens_total=summed(EventType.OPENED, {HitLabel.PREFETCH.value}),
        proxy_opens_unique=summed(EventType.OPENED, {HitLabel.PREFETCH.value}, unique=True),
        clicks_total=summed(EventType.CLICKED, people),
        clicks_unique=by_people.get(EventType.CLICKED.value, 0),
        links=[
            LinkClicks(index, total, unique, scanner)
            for index, (total, unique, scanner) in sorted(links.items())
        ],
        unsubscribed=_unsubscribed(connection, campaign_id),
        bounced=summed(EventType.BOUNCED, {None}, unique=True),
        complained=summed(EventType.COMPLAINED, {None}, unique=True),
    )


def _unsubscribed(connection: Connection, campaign_id: int) -> int:
    """Its recipients who unsubscribed from its list (or from all mail) since it started. An
    unsubscribe link names a recipient and a list, not a message, so its event is tied to no
    campaign: the consent log is read instead."""
    row = q.campaign_row(connection, campaign_id)
    if row is None or row.started_at is None:
        return 0
    scopes = (campaign_scope(row.audience), SCOPE_ALL)
    return views.unsubscribed_since(connection, campaign_id, scopes, row.started_at)


def timeline(connection: Connection, campaign_id: int, bucket_seconds: float) -> list[TimePoint]:
    """Sent, failed, opened and clicked per bucket of ``bucket_seconds``, oldest first."""
    points: dict[float, dict[str, int]] = {}
    for start, kind, count in results.sends_over_time(connection, campaign_id, bucket_seconds):
        points.setdefault(start, {})[kind] = count
    return [
        TimePoint(
            at=start,
            sent=counts.get(EventType.SENT.value, 0),
            failed=counts.get(EventType.FAILED.value, 0),
            opened=counts.get(EventType.OPENED.value, 0),
            clicked=counts.get(EventType.CLICKED.value, 0),
        )
        for start, counts in sorted(points.items())
    ]
