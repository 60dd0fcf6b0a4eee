"""The stream's window and mail scheduled for later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for


def test_mail_scheduled_for_next_week_holds_no_campaign_on_the_stream(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))  # CAMPAIGN_QUEUE_AHEAD = 60
    database.upgrade(outbox.engine)
    next_week = datetime.now(UTC) + timedelta(days=7)
    outbox.send_many(
        [
            Message(
                to=[f"d{n}@example.com"], subject="Digest", text="t", from_email="news@example.com"
            )
            for n in range(60)
        ],
        stream="bulk",
        send_at=next_week,
    )
    make_list(outbox.engine, "readers", 10)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    step = CampaignRunner(outbox).step()
    with outbox.engine.connect() as connection:
        counts = progress(connection, cid)
    print("step:", step, counts)
    assert counts.queued == 10, "nothing queued until next week's digest has gone"
    outbox.dispose()
