"""A campaign as one contact would get it: the preview the editor shows, and a test send to
given addresses before the real one.

A test send is the campaign composed with a contact's merge fields (a chosen contact of its
list, else its first), addressed to each test address, its subject marked ``[Test]`` and its
metadata ``campaign_test``; it goes through the outbox like any message and is not in the
ledger, so it never counts as the contact having been sent the campaign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mailroom.campaigns.composer import CampaignComposer
from mailroom.campaigns.store import Campaign, check_sendable, list_id_of
from mailroom.compose.templates import TemplateLibrary
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.errors import CampaignError, MessageError
from mailroom.message import Address, Message
from mailroom.outbox import ledger_queries as ledger
from mailroom.outbox.ledger_queries import PendingRecipient
from mailroom.outbox.store import Outbox

__all__ = ["MAX_TEST_ADDRESSES", "preview", "sample_contact", "send_test"]

MAX_TEST_ADDRESSES = 20


def sample_contact(outbox: Outbox, campaign: Campaign, address: str | None) -> PendingRecipient:
    """The contact whose merge fields a preview or a test uses: ``address`` in the
    campaign's list, else the list's first contact; for an application's audience (whose
    members only the application knows) a contact with an address and no attributes."""
    # normalize_address's form, the field named as the caller wrote it.
    wanted = Address.parse(address, "as_contact").addr_spec.lower() if address else None
    if campaign.list_name is None:
        return PendingRecipient(0, wanted or "someone@example.com", "preview", None, None)
    with outbox.engine.connect() as connection:
        list_id = list_id_of(connection, campaign.list_name)
        found = ledger.list_contact(connection, list_id, wanted) if list_id is not None else None
    if found is None:
        if wanted is not None:
            raise CampaignError(
                f"{wanted} is not a contact of the list {campaign.list_name!r}",
                field="as_contact",
            )
        return PendingRecipient(0, "someone@example.com", "preview", "", None)
    return found


def preview(
    outbox: Outbox,
    campaign: Campaign,
    *,
    as_contact: str | None = None,
    templates: TemplateLibrary | None = None,
) -> Message:
    """The message ``as_contact`` (an address in the campaign's list; none: its first
    contact) would get. Needs what sending needs (the unsubscribe link is in it)."""
    check_sendable(outbox.settings)
    composer = _composer(outbox, campaign, templates)
    return composer.compose(sample_contact(outbox, campaign, as_contact))


def send_test(
    outbox: Outbox,
    campaign: Campaign,
    addresses: Sequence[str],
    *,
    as_contact: str | None = None,
    templates: TemplateLibrary | None = None,
) -> list[int]:
    """Queue the campaign as ``as_contact`` would get it, to each of ``addresses``, marked as
    a test; the outbox ids."""
    if not addresses:
        raise MessageError("to", "name at least one address to send the test to")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise MessageError("to", f"a test goes to at most {MAX_TEST_ADDRESSES} addresses")
    check_sendable(outbox.settings)
    composer = _composer(outbox, campaign, templates)
    contact = sample_contact(outbox, campaign, as_contact)
    messages = []
    for position, address in enumerate(addresses):
        # The contact's merge fields, the test address's own unsubscribe link: following it
        # in a test must not unsubscribe the contact.
        to = Address.parse(address, f"to[{position}]").addr_spec.lower()
        messages.append(composer.compose(replace(contact, address=to), test=True))
    return outbox.send_many(messages, stream=campaign.stream)


def _composer(
    outbox: Outbox, campaign: Campaign, templates: TemplateLibrary | None
) -> CampaignComposer:
    settings = outbox.settings
    return CampaignComposer(
        campaign,
        settings,
        templates
        or TemplateLibrary(
            render_timeout=settings.TEMPLATE_RENDER_TIMEOUT,
            max_output_chars=settings.TEMPLATE_MAX_OUTPUT_CHARS,
        ),
        UnsubscribeTokens(settings),
    )
