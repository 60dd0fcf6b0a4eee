"""A campaign through workers killed with SIGKILL at random moments, and batches run again by
hand: every contact reaches the sink, each with one message (one Message-ID) composed for them;
a message arrives twice only in the 250→commit window, and then it was logged."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import CampaignDraft, Campaigns
from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.processes import Spawn
from support.smtp_server import ScriptedHandler, ServerFactory
from support.worker_process import worker_args, worker_env

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE | re.IGNORECASE)
CONTACTS = 3000


@dataclass
class SinkHandler(ScriptedHandler):
    """Keeps each arrival's recipient and Message-ID."""

    arrivals: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        found = MESSAGE_ID.search(envelope.original_content or b"")
        message_id = found[1].decode() if found else "?"
        for rcpt in envelope.rcpt_tos:
            self.arrivals.append((rcpt, message_id))
        return "250 2.0.0 OK"


async def test_kill_9_mid_campaign_and_batches_run_again_send_nobody_a_second_message(
    database_url: str, smtp_server_factory: ServerFactory, spawn: Spawn
) -> None:
    handler = SinkHandler()
    server = smtp_server_factory(handler=handler)
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "DEFAULT_FROM_EMAIL": "news@example.com",
        "PUBLIC_BASE_URL": "https://mail.example.com",
        "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
        "ORGANIZATION_POSTAL_ADDRESS": "Acme, 1 Main St, Springfield",
        "WORKER_LEASE_SECONDS": "2",
        "WORKER_BATCH_SIZE": "50",
        "EMAILS_PER_TASK": "50",
        "CAMPAIGN_QUEUE_AHEAD": "400",
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", CONTACTS)
    campaigns = Campaigns(outbox)
    campaign_id = campaigns.create(
        CampaignDraft(
            name="News",
            audience="list:readers",
            subject="News for {{ contact.name }}",
            from_email="news@example.com",
            body="<p>Hello {{ contact.name }}, on {{ contact.plan }}.</p>",
        )
    )
    campaigns.start(campaign_id)
    by_hand = CampaignRunner(outbox)

    rng = random.Random(20261207)
    logs: list[bytes] = []
    kills = 0
    for _ in range(4):
        worker = spawn(worker_args(), worker_env(env))
        await asyncio.sleep(rng.uniform(0.8, 2.0))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        logs.append(worker.communicate(timeout=30)[1])
        # The next batch run by hand, twice, as an operator or a retried task would.
        for _ in range(2):
            await asyncio.to_thread(by_hand.run_batch, campaign_id)
    assert kills >= 3
    assert len(handler.arrivals) < CONTACTS, "the workers finished before they were killed"

    await asyncio.sleep(2.5)  # the dead workers' leases run out
    final = spawn(worker_args("--once"), worker_env(env))
    _, err = final.communicate(timeout=300)
    logs.append(err)
    assert final.returncode == 0, err.decode()
    deadline = time.monotonic() + 30
    while campaigns.get(campaign_id).status is not CampaignStatus.FINISHED:
        assert time.monotonic() < deadline, "the campaign did not finish"
        by_hand.step()
        await asyncio.sleep(0.1)

    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign_id)
    assert (counts.sent, counts.pending, counts.queued, counts.failed) == (CONTACTS, 0, 0, 0)
    messages_for: dict[str, set[str]] = defaultdict(set)
    for rcpt, message_id in handler.arrivals:
        messages_for[rcpt].add(message_id)
    assert len(messages_for) == CONTACTS  # every contact reached the sink
    assert all(len(ids) == 1 for ids in messages_for.values())  # one message composed each
    arrived = Counter(message_id for _, message_id in handler.arrivals)
    duplicates = {message_id for message_id, n in arrived.items() if n > 1}
    # Only the 250→commit window repeats a message, and each repeat was logged re-queued.
    logged = set(re.findall(rb"re-queued message \d+ (<[^>]+>)", b"".join(logs)))
    assert {m.encode() for m in duplicates} <= logged
    outbox.dispose()
