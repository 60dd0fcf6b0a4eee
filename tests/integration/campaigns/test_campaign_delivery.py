"""Campaigns end to end against a real aiosmtpd server, on SQLite and PostgreSQL: the runner
fans the list out and queues batches, a real worker delivers, and what the server received is
compared with the ledger.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from mailroom.campaigns import batches, control
from mailroom.campaigns.composer import CampaignComposer
from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner, worker_companions
from mailroom.campaigns.store import CampaignDraft, Campaigns
from mailroom.compose.templates import TemplateLibrary
from mailroom.config import Settings, load_settings
from mailroom.consent.scopes import list_scope
from mailroom.consent.suppression import suppress
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.delivery.worker import Worker
from mailroom.errors import CampaignError, SettingsError
from mailroom.outbox import database
from mailroom.outbox.schema import campaign_recipients, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus, Status, SuppressionReason
from support.campaign_lists import make_list
from support.smtp_server import ScriptedHandler, ServerFactory, SMTPTestServer

POSTAL = "Mailroom Ltd, 1 Main St, Springfield"


def settings_for(database_url: str, server: SMTPTestServer, **extra: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "DEFAULT_FROM_EMAIL": "News <news@example.com>",
        "EMAIL_BACKEND": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_TIMEOUT": "2",
        "WORKER_POLL_INTERVAL": "0.01",
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
        "ORGANIZATION_POSTAL_ADDRESS": POSTAL,
        "EMAILS_PER_TASK": "20",
        "CAMPAIGN_QUEUE_AHEAD": "60",
    }
    environ.update(extra)
    return load_settings(environ=environ)


@pytest.fixture
def server(smtp_server_factory: ServerFactory) -> SMTPTestServer:
    return smtp_server_factory(handler=ScriptedHandler())


@pytest.fixture
def outbox(database_url: str, server: SMTPTestServer) -> Iterator[Outbox]:
    box = Outbox(settings_for(database_url, server))
    database.upgrade(box.engine)
    yield box
    box.dispose()


def draft(**changes: str) -> CampaignDraft:
    values = {
        "name": "December news",
        "audience": "list:readers",
        "subject": "News for {{ contact.name }}",
        "from_email": "News <news@example.com>",
        "body": "<html><body><p>Hello {{ contact.name }}, you are on {{ contact.plan }}."
        '</p><p><a href="https://example.com/read">Read</a></p></body></html>',
    }
    values.update(changes)
    return CampaignDraft(**values)


def deliver(outbox: Outbox, campaign_id: int, *, rounds: int = 200) -> None:
    """Runner steps and worker runs in turn until the campaign is finished."""
    runner = CampaignRunner(outbox)
    for _ in range(rounds):
        runner.step()
        asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
        if Campaigns(outbox).get(campaign_id).status is CampaignStatus.FINISHED:
            return
    raise AssertionError(f"campaign {campaign_id} did not finish in {rounds} rounds")


def received_by_recipient(server: SMTPTestServer) -> Counter[str]:
    return Counter(rcpt for got in server.scripted.received for rcpt in got.rcpt_tos)


def parsed(server: SMTPTestServer, address: str) -> EmailMessage:
    for got in server.scripted.received:
        if address in got.rcpt_tos:
            message = email.message_from_bytes(got.data, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            return message
    raise AssertionError(f"nothing for {address}")


def test_every_contact_gets_it_once_with_bulk_headers_and_footer(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    make_list(outbox.engine, "readers", 250)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    deliver(outbox, campaign_id)

    got = received_by_recipient(server)
    assert len(got) == 250
    assert set(got.values()) == {1}
    message = parsed(server, "reader7@example.com")
    assert message["Subject"] == "News for Reader 7"
    assert message["Precedence"] == "bulk"
    assert message["List-Id"] == '"readers" <readers.example.com>'
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://mail.example.com/unsubscribe/")
    assert message["X-Mailroom-Notification-Type"] == f"campaign-{campaign_id}"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert "Hello Reader 7, you are on pro." in text.get_content()
    assert POSTAL in text.get_content()
    assert POSTAL in html.get_content()
    assert "/unsubscribe/" in html.get_content()
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    assert (counts.sent, counts.pending, counts.queued, counts.failed) == (250, 0, 0, 0)


def test_a_campaign_is_refused_without_the_postal_address(
    database_url: str, server: SMTPTestServer
) -> None:
    outbox = Outbox(settings_for(database_url, server, ORGANIZATION_POSTAL_ADDRESS=""))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    with pytest.raises(SettingsError, match="ORGANIZATION_POSTAL_ADDRESS"):
        campaigns.start(campaign_id)
    assert campaigns.get(campaign_id).status is CampaignStatus.DRAFT
    outbox.dispose()


def test_suppressed_and_unsubscribed_contacts_never_get_it(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    make_list(outbox.engine, "readers", 40)
    suppress(outbox.engine, "reader1@example.com", SuppressionReason.HARD_BOUNCE)
    suppress(
        outbox.engine,
        "READER2@example.com",
        SuppressionReason.UNSUBSCRIBED,
        scope=list_scope("readers"),
    )
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    runner = CampaignRunner(outbox)
    runner.step()  # the first batches are queued; reader3's message is waiting in the outbox
    # An opt-out after the message was composed: the check when it comes due stops it.
    suppress(
        outbox.engine,
        "reader3@example.com",
        SuppressionReason.UNSUBSCRIBED,
        scope=list_scope("readers"),
    )
    deliver(outbox, campaign_id)
    got = received_by_recipient(server)
    assert {"reader1@example.com", "reader2@example.com", "reader3@example.com"}.isdisjoint(got)
    assert len(got) == 37
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
        reasons = dict(
            connection.execute(
                select(campaign_recipients.c.address, campaign_recipients.c.reason).where(
                    campaign_recipients.c.reason.is_not(None)
                )
            ).all()
        )
    assert (counts.sent, counts.suppressed) == (37, 3)
    assert reasons == {"reader1@example.com": "hard_bounce", "reader2@example.com": "unsubscribed"}


def test_batches_run_twice_at_once_queue_nobody_twice(outbox: Outbox) -> None:
    """Four threads racing on the same pending rows, as two workers or a Celery task
    delivered twice would: every recipient's message is in the outbox once."""
    make_list(outbox.engine, "readers", 200)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaign = campaigns.start(campaign_id)
    CampaignRunner(outbox, max_batches=1).step()  # fans the list out, queues one batch
    composer = CampaignComposer(
        campaign,
        outbox.settings,
        TemplateLibrary(),
        UnsubscribeTokens(outbox.settings),
    )
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def race() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(12):
                batches.queue_batch(outbox, composer, size=20)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with outbox.engine.connect() as connection:
        recipients = [row[0][0] for row in connection.execute(select(messages.c.recipients))]
        counts = progress(connection, campaign_id)
    assert len(recipients) == 200
    assert len(set(recipients)) == 200
    assert (counts.queued, counts.pending) == (200, 0)


def test_pause_takes_waiting_messages_back_and_resume_sends_each_once(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    make_list(outbox.engine, "readers", 150)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    runner = CampaignRunner(outbox)
    runner.step()  # 60 queued (the window), the rest pending
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    runner.step()  # 60 more queued
    paused = control.pause(outbox.engine, campaign_id)
    assert paused.campaign.status is CampaignStatus.PAUSED
    assert paused.withdrawn == 60
    with outbox.engine.connect() as connection:
        waiting = connection.execute(
            select(func.count()).where(messages.c.status.in_([Status.QUEUED.value]))
        ).scalar_one()
    assert waiting == 0
    runner.step()  # a paused campaign queues nothing
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    assert len(received_by_recipient(server)) == 60
    with pytest.raises(CampaignError, match="paused"):
        control.pause(outbox.engine, campaign_id)
    control.resume(outbox.engine, campaign_id)
    deliver(outbox, campaign_id)
    got = received_by_recipient(server)
    assert len(got) == 150
    assert set(got.values()) == {1}


def test_cancel_skips_everyone_not_yet_sent(outbox: Outbox, server: SMTPTestServer) -> None:
    make_list(outbox.engine, "readers", 100)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    runner = CampaignRunner(outbox)
    runner.step()
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    runner.step()
    outcome = control.cancel(outbox.engine, campaign_id)
    assert outcome.campaign.status is CampaignStatus.CANCELLED
    runner.step()
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    assert counts.sent == 60
    assert counts.skipped == 40
    assert (counts.pending, counts.queued) == (0, 0)
    assert len(received_by_recipient(server)) == 60
    with pytest.raises(CampaignError, match="cancelled"):
        control.resume(outbox.engine, campaign_id)


def test_failed_recipients_are_retried_by_one_action(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    make_list(outbox.engine, "readers", 30)
    server.scripted.rcpt_replies["reader4@example.com"] = "550 5.1.1 no such user"
    server.scripted.rcpt_replies["reader9@example.com"] = "550 5.1.1 no such user"
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    deliver(outbox, campaign_id)
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    assert (counts.sent, counts.failed) == (28, 2)
    server.scripted.rcpt_replies.clear()
    retried = control.retry_failed(outbox.engine, campaign_id)
    assert retried.withdrawn == 2
    assert retried.campaign.status is CampaignStatus.SENDING
    deliver(outbox, campaign_id)
    got = received_by_recipient(server)
    assert len(got) == 30
    assert set(got.values()) == {1}


def test_a_rising_failure_rate_pauses_the_campaign_with_the_reason(
    database_url: str, server: SMTPTestServer
) -> None:
    outbox = Outbox(
        settings_for(
            database_url, server, CAMPAIGN_FAILURE_SAMPLE="20", CAMPAIGN_MAX_FAILURE_RATE="0.5"
        )
    )
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 200)
    server.scripted.replies["RCPT"] = "550 5.7.1 refused by policy"
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    runner = CampaignRunner(outbox)
    for _ in range(10):
        runner.step()
        asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
        if campaigns.get(campaign_id).status is CampaignStatus.PAUSED:
            break
    campaign = campaigns.get(campaign_id)
    assert campaign.status is CampaignStatus.PAUSED
    assert campaign.paused_reason is not None
    assert "CAMPAIGN_MAX_FAILURE_RATE" in campaign.paused_reason
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    assert counts.pending > 0  # the rest waits in the ledger for a resume
    outbox.dispose()


def test_only_a_draft_can_be_edited_and_a_duplicate_is_a_new_draft(outbox: Outbox) -> None:
    make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.update(campaign_id, draft(subject="Edited"))
    assert campaigns.get(campaign_id).subject == "Edited"
    campaigns.start(campaign_id)
    with pytest.raises(CampaignError, match="only a draft"):
        campaigns.update(campaign_id, draft(subject="Too late"))
    copy_id = campaigns.duplicate(campaign_id)
    copy = campaigns.get(copy_id)
    assert copy.status is CampaignStatus.DRAFT
    assert (copy.subject, copy.name, copy.duplicated_from) == (
        "Edited",
        "Copy of December news",
        campaign_id,
    )


def test_a_once_worker_ends_while_the_relay_defers_a_window_of_campaign_mail(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    """Throttling defers and never fails (listmonk's #1802): the campaign stays sending with
    its window deferred and the rest pending, and ``--once`` is not kept waiting for retries."""
    make_list(outbox.engine, "readers", 150)
    server.scripted.replies["RCPT"] = "451 4.7.1 slow down"
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    worker = Worker(outbox.settings, engine=outbox.engine, once=True, companions=worker_companions)

    async def run_bounded() -> None:
        await asyncio.wait_for(worker.run(), timeout=60)

    asyncio.run(run_bounded())
    assert campaigns.get(campaign_id).status is CampaignStatus.SENDING
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
        deferred = connection.execute(
            select(func.count()).where(messages.c.status == Status.DEFERRED.value)
        ).scalar_one()
    assert (counts.queued, counts.failed, counts.pending) == (60, 0, 90)
    assert deferred == 60


def test_a_once_worker_with_the_campaigns_beside_it_finishes_one(
    outbox: Outbox, server: SMTPTestServer
) -> None:
    make_list(outbox.engine, "readers", 130)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(draft())
    campaigns.start(campaign_id)
    worker = Worker(outbox.settings, engine=outbox.engine, once=True, companions=worker_companions)

    async def run_bounded() -> None:
        await asyncio.wait_for(worker.run(), timeout=60)

    asyncio.run(run_bounded())
    assert campaigns.get(campaign_id).status is CampaignStatus.FINISHED
    assert len(received_by_recipient(server)) == 130
