"""Contacts getting the campaign after a cancel or a pause."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from mailroom.campaigns import control
from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.delivery.worker import Worker
from mailroom.errors import CampaignError, TransientError
from mailroom.message import Envelope
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.transports.base import SendProgress, SendResult, Transport
from support.campaign_lists import make_list
from support.campaign_review import draft, received, settings_for
from support.smtp_server import ScriptedHandler, ServerFactory


class CancelDuringSend(Transport):
    """The operator presses cancel (or pause) while the worker holds the messages; the
    relay then answers 451 for them."""

    name = "cancel-during-send"

    def __init__(
        self, engine: Engine, campaign_id: int, action: Callable[[Engine, int], object]
    ) -> None:
        self.engine, self.campaign_id, self.action = engine, campaign_id, action
        self.done = False

    async def send(self, envelope: Envelope, progress: SendProgress | None = None) -> SendResult:
        if not self.done:
            self.done = True
            await asyncio.to_thread(self.action, self.engine, self.campaign_id)
        raise TransientError("451 4.3.0 try later", code=451, enhanced_status="4.3.0")


@pytest.mark.parametrize("action", ["cancel", "pause"])
def test_a_message_held_at_the_stop_is_taken_back_when_it_comes_back_to_wait(
    database_url: str, smtp_server_factory: ServerFactory, action: str
) -> None:
    server = smtp_server_factory(handler=ScriptedHandler())
    outbox = Outbox(settings_for(database_url, server.port, EMAIL_RETRY_DELAY="0.5"))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 5)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    CampaignRunner(outbox).step()  # the 5 messages are queued

    stop = getattr(control, action)
    transport = CancelDuringSend(outbox.engine, campaign_id, stop)
    asyncio.run(
        Worker(
            outbox.settings,
            engine=outbox.engine,
            once=True,
            transport_factory=lambda: transport,
            concurrency=1,
        ).run()
    )
    expected = CampaignStatus.CANCELLED if action == "cancel" else CampaignStatus.PAUSED
    assert campaigns.get(campaign_id).status is expected

    # The campaigns' next step (a worker's companion, or Celery's tick) takes the deferred
    # message back before its retry comes due.
    CampaignRunner(outbox).step()
    time.sleep(2)  # the retry delay passes
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    got = received(server)
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    print(
        action,
        "status:",
        campaigns.get(campaign_id).status,
        "delivered after the stop:",
        sum(got.values()),
        counts,
    )
    assert campaigns.get(campaign_id).status is expected
    assert sum(got.values()) == 0, f"{sum(got.values())} contacts got it after the {action}"
    outbox.dispose()


def test_retry_failed_is_refused_while_paused(
    database_url: str, smtp_server_factory: ServerFactory
) -> None:
    server = smtp_server_factory(handler=ScriptedHandler())
    outbox = Outbox(settings_for(database_url, server.port))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 10)
    server.scripted.rcpt_replies["reader4@example.com"] = "550 5.1.1 no such user"
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    CampaignRunner(outbox).step()
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    control.pause(outbox.engine, campaign_id)
    server.scripted.rcpt_replies.clear()
    before = sum(received(server).values())
    with pytest.raises(CampaignError, match="resume it first"):
        control.retry_failed(outbox.engine, campaign_id)
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    assert sum(received(server).values()) == before, "sent while paused"
    outbox.dispose()


def test_pause_and_resume_of_a_scheduled_campaign_keeps_it_scheduled(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert campaigns.start(campaign_id, send_at=tomorrow).status is CampaignStatus.SCHEDULED
    control.pause(outbox.engine, campaign_id)
    resumed = control.resume(outbox.engine, campaign_id).campaign
    step = CampaignRunner(outbox).step()
    print("after resume:", resumed.status, "send_at", resumed.send_at, "queued now:", step.queued)
    assert resumed.status is CampaignStatus.SCHEDULED, "scheduled for tomorrow, sending now"
    outbox.dispose()
