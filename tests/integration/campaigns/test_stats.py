"""A campaign's results read from events at known times, on SQLite and PostgreSQL: who
opened and who clicked counted once however many links and hits, scanners and proxies apart,
and sends over time in the bucket each one falls in.

The campaign is queued by the runner (a ledger row and a message per contact); the events are
then recorded as the worker and the hit recorder write them, with chosen times and labels.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.stats import LinkClicks, TimePoint, campaign_stats, timeline
from mailroom.campaigns.store import CampaignDraft, Campaigns
from mailroom.config import load_settings
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.consent.unsubscribe import unsubscribe
from mailroom.outbox import database
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.schema import campaign_recipients
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, HitLabel
from support.campaign_lists import make_list

BASE = 1_700_000_020.0  # 40 s into a minute: PostgreSQL rounds 40/60 up, a floor does not


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    settings = load_settings(
        environ={
            "DATABASE_URL": database_url,
            "PUBLIC_BASE_URL": "https://mail.example.com",
            "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
            "ORGANIZATION_POSTAL_ADDRESS": "Mailroom Ltd, 1 Main St, Springfield",
            "TRACK_OPENS": "bulk",
            "TRACK_CLICKS": "bulk",
        }
    )
    box = Outbox(settings)
    database.upgrade(box.engine)
    yield box
    box.dispose()


def queued_campaign(outbox: Outbox, size: int) -> tuple[int, list[tuple[int, str]]]:
    """A campaign to a list of ``size``, every message queued; its id and (pk, address)."""
    make_list(outbox.engine, "readers", size)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(
        CampaignDraft(
            name="Stats",
            audience="list:readers",
            subject="Hello {{ contact.name }}",
            from_email="news@example.com",
            body='<p><a href="https://example.com/a">A</a> <a href="https://example.com/b">B</a>'
            "</p>",
        )
    )
    campaigns.start(campaign_id)
    runner = CampaignRunner(outbox)
    for _ in range(20):
        runner.step()
        with outbox.engine.connect() as connection:
            rows = connection.execute(
                select(campaign_recipients.c.message_pk, campaign_recipients.c.address)
                .where(campaign_recipients.c.campaign_id == campaign_id)
                .order_by(campaign_recipients.c.address)
            ).all()
        if len(rows) == size and all(pk is not None for pk, _ in rows):
            return campaign_id, [(int(pk), address) for pk, address in rows]
    raise AssertionError("the runner did not queue the campaign")


def event(
    pk: int,
    address: str,
    kind: EventType,
    at: float,
    *,
    label: HitLabel | None = None,
    link: int | None = None,
) -> EventRecord:
    return EventRecord(pk, address, kind, at, label=label, link_index=link)


def test_unique_counts_recipients_once_across_links_and_labels(outbox: Outbox) -> None:
    campaign_id, (first, second, third, _) = queued_campaign(outbox, 4)
    human, proxy, scanner = HitLabel.HUMAN, HitLabel.PREFETCH, HitLabel.SCANNER
    opened, clicked = EventType.OPENED, EventType.CLICKED

    def hit(
        who: tuple[int, str], kind: EventType, label: HitLabel | None, link: int | None = None
    ) -> EventRecord:
        return event(*who, kind, BASE, label=label, link=link)

    with outbox.engine.begin() as connection:
        record_events(
            connection,
            [
                hit(first, opened, human),
                hit(first, opened, human),
                hit(first, opened, proxy),
                hit(second, opened, None),  # unlabelled: a person's, as far as is known
                hit(third, opened, proxy),
                hit(first, clicked, human, 0),
                hit(first, clicked, human, 0),
                hit(first, clicked, human, 1),
                hit(second, clicked, human, 1),
                hit(third, clicked, scanner, 0),
                hit(third, clicked, scanner, 1),
            ],
        )
    with outbox.engine.connect() as connection:
        stats = campaign_stats(connection, campaign_id)
    assert (stats.opens_total, stats.opens_unique) == (3, 2)
    assert (stats.proxy_opens_total, stats.proxy_opens_unique) == (2, 2)
    assert (stats.clicks_total, stats.clicks_unique) == (4, 2)  # not 3: first clicked both
    assert stats.links == [LinkClicks(0, 2, 1, 1), LinkClicks(1, 2, 2, 1)]
    assert stats.recipients.queued == 4


def test_sends_over_time_fall_in_the_bucket_they_happened_in(outbox: Outbox) -> None:
    campaign_id, recipients = queued_campaign(outbox, 3)
    (a, b, c) = recipients
    with outbox.engine.begin() as connection:
        record_events(
            connection,
            [
                event(*a, EventType.SENT, BASE),  # minute 0, 40 s in
                event(*b, EventType.SENT, BASE + 19.9),  # minute 0, 59.9 s in
                event(*c, EventType.FAILED, BASE + 20),  # minute 1
                event(*a, EventType.OPENED, BASE + 3600, label=HitLabel.HUMAN),  # an hour later
                event(*a, EventType.CLICKED, BASE + 3610, label=HitLabel.HUMAN, link=0),
            ],
        )
    minute = BASE - 40
    with outbox.engine.connect() as connection:
        by_minute = timeline(connection, campaign_id, 60)
        by_hour = timeline(connection, campaign_id, 3600)
    assert by_minute == [
        TimePoint(minute, sent=2),
        TimePoint(minute + 60, failed=1),
        TimePoint(minute + 3600, opened=1, clicked=1),
    ]
    hour = BASE // 3600 * 3600
    assert by_hour == [
        TimePoint(hour, sent=2, failed=1),
        TimePoint(hour + 3600, opened=1, clicked=1),
    ]


def test_recipients_who_unsubscribe_by_its_link_are_counted(outbox: Outbox) -> None:
    """The link names a recipient and the list, not a message: counted from the consent log,
    once per recipient, and not before the campaign started."""
    campaign_id, recipients = queued_campaign(outbox, 3)
    tokens = UnsubscribeTokens(outbox.settings)
    (_, first), (_, second), _ = recipients
    for address in (first, first, second):  # the first twice: counted once
        unsubscribe(outbox.engine, outbox.settings, tokens.make(address, "list:readers"))
    # Another list's unsubscribe is not this campaign's.
    unsubscribe(outbox.engine, outbox.settings, tokens.make(second, "list:others"))
    with outbox.engine.connect() as connection:
        stats = campaign_stats(connection, campaign_id)
    assert stats.unsubscribed == 2
