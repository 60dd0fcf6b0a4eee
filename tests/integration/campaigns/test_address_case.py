"""A list holding the same mailbox in two spellings (nothing in the schema prevents it)."""

from __future__ import annotations

import time

from sqlalchemy import insert

from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.outbox import database
from mailroom.outbox.schema import contacts
from mailroom.outbox.store import Outbox
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for


def test_two_spellings_of_one_mailbox_get_one_message(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    list_id = make_list(outbox.engine, "readers", 0)
    now = time.time()
    with outbox.engine.begin() as connection:
        connection.execute(
            insert(contacts),
            [
                {"list_id": list_id, "address": a, "created_at": now, "updated_at": now}
                for a in ("Ada@Example.com", "ada@example.com")
            ],
        )
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    CampaignRunner(outbox).step()
    with outbox.engine.connect() as connection:
        counts = progress(connection, cid)
    print(counts)
    assert counts.queued == 1
    outbox.dispose()
