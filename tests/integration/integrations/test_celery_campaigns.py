"""A campaign fanned out as Celery tasks (``CAMPAIGN_FANOUT=celery``) with a real Celery worker
and a real Redis broker: a worker killed (SIGKILL, its whole process group) in the middle of a
batch, the broker giving the batch to the next worker, and every contact still sent the
campaign once."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery

from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import CampaignDraft, Campaigns
from mailroom.config import load_settings
from mailroom.delivery.worker import Worker
from mailroom.integrations.celery_campaigns import CAMPAIGN_BATCH_TASK, CAMPAIGNS_TASK
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.celery_processes import Processes, wait_until
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

from .test_celery import forget_queue, process_env

CONTACTS = 800
PER_TASK = 100
# Each recipient's message takes a few milliseconds to compose, so a batch runs long enough
# to be killed in the middle of it.
SLOW_BODY = (
    "<html><body><p>Hello {{ contact.name }}</p>"
    "{% for i in range(1500) %}{% if i % 1000 == 0 %}<p>{{ i }}</p>{% endif %}{% endfor %}"
    "</body></html>"
)
_RECEIVED = re.compile(r"Task mailroom\.campaign_batch\[([0-9a-f-]+)\] received")


@dataclass
class Setup:
    outbox: Outbox
    server: SMTPTestServer
    queue: str
    processes: Processes
    client: Celery


@pytest.fixture
def setup(
    database_url: str,
    redis_url: str,
    smtp_server_factory: ServerFactory,
    tmp_path: Path,
) -> Iterator[Setup]:
    server = smtp_server_factory(handler=ScriptedHandler())
    settings = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "DEFAULT_FROM_EMAIL": "news@example.com",
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
        "ORGANIZATION_POSTAL_ADDRESS": "Acme, 1 Main St, Springfield",
        "CAMPAIGN_FANOUT": "celery",
        "EMAILS_PER_TASK": str(PER_TASK),
        "CAMPAIGN_QUEUE_AHEAD": str(CONTACTS * 2),
    }
    outbox = Outbox(load_settings(environ=settings))
    database.upgrade(outbox.engine)
    queue = f"mailroom-test-{secrets.token_hex(4)}"
    processes = Processes(
        tmp_path, process_env(settings, redis_url, queue, TESTAPP_VISIBILITY_TIMEOUT="3")
    )
    client = Celery("mailroom_test_client", broker=redis_url, backend=redis_url)
    client.conf.broker_connection_retry_on_startup = True
    try:
        yield Setup(outbox, server, queue, processes, client)
    finally:
        processes.stop_all()
        client.close()
        outbox.dispose()
        forget_queue(redis_url, queue)


def test_a_batch_killed_mid_way_is_redelivered_and_nobody_gets_it_twice(setup: Setup) -> None:
    outbox = setup.outbox
    make_list(outbox.engine, "readers", CONTACTS)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(
        CampaignDraft(
            name="Slow news",
            audience="list:readers",
            subject="News for {{ contact.name }}",
            from_email="news@example.com",
            body=SLOW_BODY,
        )
    )
    campaigns.start(campaign_id)
    # The Beat tick, sent by hand: it fans the list out and dispatches a task per batch.
    tick = setup.client.send_task(CAMPAIGNS_TASK, queue=setup.queue)
    first = setup.processes.celery_worker("first", setup.queue)
    result = tick.get(timeout=60)
    assert result["dispatched"] == CONTACTS // PER_TASK, result
    assert result["fanned_out"] == CONTACTS, result

    # Killed while a batch runs: once the second batch task is received, a few hundred
    # milliseconds into composing it.
    wait_until(
        lambda: len(_RECEIVED.findall(first.output())) >= 2,
        60,
        "the second batch task",
        setup.processes.check_running,
    )
    time.sleep(0.4)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(10)
    killed_in = _RECEIVED.findall(first.output())[-1]
    with outbox.engine.connect() as connection:
        at_kill = progress(connection, campaign_id)
    assert at_kill.pending > 0, "the kill came after every batch was done"

    # The broker gives the unacknowledged batch to the next worker (after the test app's
    # visibility timeout), with the batches nobody took yet.
    second = setup.processes.celery_worker("second", setup.queue)

    def all_queued() -> bool:
        with outbox.engine.connect() as connection:
            return progress(connection, campaign_id).pending == 0

    def second_running() -> None:
        assert second.process.poll() is None, second.output()

    wait_until(all_queued, 120, "every recipient queued", second_running)
    assert killed_in in _RECEIVED.findall(second.output()), "the killed batch was not redelivered"

    asyncio.run(
        asyncio.wait_for(Worker(outbox.settings, engine=outbox.engine, once=True).run(), 120)
    )
    got = Counter(rcpt for message in setup.server.scripted.received for rcpt in message.rcpt_tos)
    assert len(got) == CONTACTS
    assert max(got.values()) == 1
    # The next tick finds everyone sent and finishes the campaign.
    CampaignRunner(outbox).step()
    assert campaigns.get(campaign_id).status is CampaignStatus.FINISHED
    with outbox.engine.connect() as connection:
        final = progress(connection, campaign_id)
    assert (final.sent, final.pending, final.queued) == (CONTACTS, 0, 0)
    assert CAMPAIGN_BATCH_TASK in second.output()
