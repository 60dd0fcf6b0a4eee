"""A scheduled campaign moved to next week while a runner step is under way."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for


def test_a_campaign_rescheduled_during_a_step_waits_for_its_new_time(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid, send_at=datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.2)
    runner = CampaignRunner(outbox)
    with outbox.engine.connect() as connection:
        due = q.campaigns_to_run(connection, time.time())  # what step() reads first
    assert [row.id for row in due] == [cid]
    # ... the step works on earlier campaigns (seconds each); the operator moves this one:
    campaigns.start(cid, send_at=datetime.now(UTC) + timedelta(days=7))
    runner._start_scheduled(cid)  # what _step_one then does with the row it read
    status = campaigns.get(cid).status
    print("after the reschedule:", status)
    assert status is CampaignStatus.SCHEDULED
    outbox.dispose()
