"""Resuming a campaign the error rate paused, once the relay is fixed."""

from __future__ import annotations

import asyncio

from mailroom.campaigns import control
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.delivery.worker import Worker
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.campaign_review import draft, received, settings_for
from support.smtp_server import ScriptedHandler, ServerFactory


def test_resume_after_the_relay_is_fixed_goes_on_sending(
    database_url: str, smtp_server_factory: ServerFactory
) -> None:
    server = smtp_server_factory(handler=ScriptedHandler())
    outbox = Outbox(
        settings_for(
            database_url, server.port, CAMPAIGN_FAILURE_SAMPLE="20", CAMPAIGN_MAX_FAILURE_RATE="0.5"
        )
    )
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 200)
    server.scripted.replies["RCPT"] = "550 5.7.1 refused by policy"
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    runner = CampaignRunner(outbox)
    for _ in range(10):
        runner.step()
        asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
        if campaigns.get(cid).status is CampaignStatus.PAUSED:
            break
    assert campaigns.get(cid).status is CampaignStatus.PAUSED
    server.scripted.replies.pop("RCPT")  # the operator fixes the relay ...
    control.resume(outbox.engine, cid)  # ... and resumes
    runner.step()
    campaign = campaigns.get(cid)
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    print(
        "after resume + one step:",
        campaign.status.value,
        "|",
        campaign.paused_reason,
        "| delivered:",
        sum(received(server).values()),
    )
    assert campaign.status is CampaignStatus.SENDING, "paused again by the old failures"
    outbox.dispose()
