"""A finished campaign's counts after the routine purge of old messages."""

from __future__ import annotations

import asyncio
import time

from mailroom.campaigns import control
from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.delivery.worker import Worker
from mailroom.outbox import database
from mailroom.outbox.operations import purge
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for
from support.smtp_server import ScriptedHandler, ServerFactory


def test_purging_old_messages_keeps_a_campaigns_results(
    database_url: str, smtp_server_factory: ServerFactory
) -> None:
    server = smtp_server_factory(handler=ScriptedHandler())
    outbox = Outbox(settings_for(database_url, server.port))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 10)
    server.scripted.rcpt_replies["reader4@example.com"] = "550 5.1.1 no such user"
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    runner = CampaignRunner(outbox)
    for _ in range(5):
        runner.step()
        asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    assert campaigns.get(cid).status is CampaignStatus.FINISHED
    with outbox.engine.connect() as connection:
        before = progress(connection, cid)
    with outbox.engine.begin() as connection:  # `mailroom purge --older-than 30d`, a month on
        purge(connection, older_than=time.time() + 1)
    with outbox.engine.connect() as connection:
        after = progress(connection, cid)
    retried = control.retry_failed(outbox.engine, cid).withdrawn
    print("before:", before, "\nafter: ", after, "\nretry-failed re-queued:", retried)
    assert after == before, "the campaign's results changed when its old messages were purged"
    outbox.dispose()
