"""A message the relay may have accepted (no reply after the final dot) is deferred; a pause
then withdraws it and the resume composes a new one, with a new Message-ID."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailroom.campaigns import control
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.delivery.worker import Worker
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for
from support.smtp_server import ScriptedHandler, ServerFactory

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.MULTILINE)


@dataclass
class AcceptsThenHangsUp(ScriptedHandler):
    """Takes the message, then drops the connection before its 250 (first time only)."""

    arrivals: list[tuple[str, str]] = field(default_factory=list)
    drop_first: bool = True

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        found = MESSAGE_ID.search(envelope.original_content or b"")
        for rcpt in envelope.rcpt_tos:
            self.arrivals.append((rcpt, found[1].decode() if found else "?"))
        if self.drop_first:
            self.drop_first = False
            assert server.transport is not None
            server.transport.close()
            return "250 never sent"
        return "250 2.0.0 OK"


def test_pause_after_a_possible_delivery_keeps_its_message_id(
    database_url: str, smtp_server_factory: ServerFactory
) -> None:
    handler = AcceptsThenHangsUp()
    server = smtp_server_factory(handler=handler)
    outbox = Outbox(settings_for(database_url, server.port))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 1)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    runner = CampaignRunner(outbox)
    runner.step()
    asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())  # deferred
    control.pause(outbox.engine, cid)  # the deferred message is withdrawn
    control.resume(outbox.engine, cid)
    for _ in range(5):
        runner.step()
        asyncio.run(Worker(outbox.settings, engine=outbox.engine, once=True).run())
        if campaigns.get(cid).status is CampaignStatus.FINISHED:
            break
    print("arrivals:", handler.arrivals)
    ids = {mid for _, mid in handler.arrivals}
    assert len(ids) == 1, "two copies with different Message-IDs: the receiver cannot tell"
    outbox.dispose()
