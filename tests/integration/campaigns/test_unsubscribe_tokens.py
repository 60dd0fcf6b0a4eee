"""What a campaign's (and a test send's) unsubscribe token names as the recipient's key."""

from __future__ import annotations

import email
import email.policy
import re

from sqlalchemy import select

from mailroom.campaigns import previews
from mailroom.campaigns.composer import CampaignComposer
from mailroom.campaigns.store import Campaigns
from mailroom.compose.templates import TemplateLibrary
from mailroom.consent.centre import OfferedType, save_centre
from mailroom.consent.preferences import email_choices
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.outbox import database, ledger_queries
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for

TOKEN = re.compile(r"/unsubscribe/([A-Za-z0-9_.\-]+)")


def test_a_list_contacts_unsubscribe_token_names_no_app_user_key(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    list_id = make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaign = campaigns.start(cid)
    with outbox.engine.connect() as connection:
        contact = ledger_queries.list_contact(connection, list_id, "reader2@example.com")
    assert contact is not None
    composer = CampaignComposer(
        campaign, outbox.settings, TemplateLibrary(), UnsubscribeTokens(outbox.settings)
    )
    message = composer.compose(contact)
    token = _token(message.headers["List-Unsubscribe"])
    claim = UnsubscribeTokens(outbox.settings).verify(token)
    print("reader2's token:", claim)
    offered = [OfferedType("weekly_digest", "Weekly digest", True)]
    # reader2 opens the preference centre from her campaign's unsubscribe page and turns
    # the digest off ...
    save_centre(outbox.engine, claim, offered, {"weekly_digest": False}, stop_all=False)
    # ... and the application's user whose key is "3" (another person) no longer gets it.
    with outbox.engine.connect() as connection:
        choice = email_choices(
            connection, [contact.contact_key], "weekly_digest", default_on=True, may_opt_out=True
        )
    print("preference now stored under key", contact.contact_key, "->", choice)
    assert claim.key is None, f"the token names app key {claim.key!r} (a contacts-table id)"
    outbox.dispose()


def test_a_test_sends_token_names_only_the_test_address(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 3)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaign = campaigns.get(cid)
    ids = previews.send_test(
        outbox, campaign, ["tester@example.org"], as_contact="reader1@example.com"
    )
    with outbox.engine.connect() as connection:
        data = connection.execute(
            select(messages.c.data).where(messages.c.id == ids[0])
        ).scalar_one()
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    token = _token(str(parsed["List-Unsubscribe"]))
    claim = UnsubscribeTokens(outbox.settings).verify(token)
    print("test send token:", claim)
    assert claim.key is None, "the tester's preference centre edits the contact's preferences"
    outbox.dispose()


def _token(header: str) -> str:
    found = TOKEN.search(header)
    assert found is not None, header
    return found.group(1)
