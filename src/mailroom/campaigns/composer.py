"""One recipient's message of a campaign: its content with their merge fields, in the same
sandbox as notifications (:class:`~mailroom.compose.templates.TemplateLibrary`), the footer
every campaign carries, and the headers bulk mail needs.

Merge fields: ``{{ contact.email }}``, ``{{ contact.name }}`` and ``{{ contact.<attribute> }}``
for each of the contact's attributes, ``{{ campaign.name }}``, ``{{ unsubscribe_url }}`` and
``{{ app_name }}``. A Markdown body is turned into HTML once, before any of them is filled in,
so a contact's name is always escaped as text and never read as Markdown.

Headers: ``List-Unsubscribe`` with RFC 8058 one-click (the token's scope is the mailing
list's, ``list:<name>``), ``List-Id`` (RFC 2919), ``Precedence: bulk`` (what autoresponders
read to stay quiet), and the type header (``NOTIFICATION_TYPE_HEADER``) naming the campaign.
The footer says why the recipient gets it, links to unsubscribe, and gives
``ORGANIZATION_POSTAL_ADDRESS``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from markdown_it import MarkdownIt

from mailroom.campaigns.audiences import APP_PREFIX, LIST_PREFIX
from mailroom.compose import headers
from mailroom.compose.footer import Footer, add_footer
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.config import Settings
from mailroom.consent.scopes import list_scope
from mailroom.consent.tokens import UnsubscribeTokens, unsubscribe_url
from mailroom.message import Address, Message
from mailroom.outbox.ledger_queries import PendingRecipient

if TYPE_CHECKING:
    from mailroom.campaigns.store import Campaign

__all__ = ["TEST_SUBJECT_PREFIX", "CampaignComposer", "campaign_scope", "campaign_template"]

TEST_SUBJECT_PREFIX = "[Test] "
_LIST_LABEL = re.compile(r"[^a-z0-9-]+")


def campaign_template(subject: str, body: str, body_format: str) -> Template:
    """The campaign's content as a template: its HTML (from Markdown, once) and subject; the
    text part is made from each recipient's HTML."""
    html = body if body_format == "html" else _markdown(body)
    return Template(name="campaign", subject=subject, html=html)


def campaign_scope(audience: str) -> str:
    """The consent scope an unsubscribe from the campaign covers: its list's
    (``list:<name>``; an application's audience ``app:<name>`` is the list ``<name>``)."""
    return list_scope(audience.removeprefix(LIST_PREFIX).removeprefix(APP_PREFIX))


def _markdown(source: str) -> str:
    # CommonMark without raw HTML: who wants HTML picks the HTML format, where it is theirs.
    rendered = MarkdownIt("commonmark", {"html": False}).render(source)
    return f"<!DOCTYPE html>\n<html><body>\n{rendered}</body></html>\n"


class CampaignComposer:
    """Composes ``campaign``'s message for each of its recipients."""

    def __init__(
        self,
        campaign: Campaign,
        settings: Settings,
        templates: TemplateLibrary,
        tokens: UnsubscribeTokens,
    ) -> None:
        self.campaign = campaign
        self.settings = settings
        self.templates = templates
        self.tokens = tokens
        self.template = campaign_template(campaign.subject, campaign.body, campaign.body_format)
        self.scope = campaign_scope(campaign.audience)
        self.sender = Address.parse(campaign.from_email, "from_email")
        self.reply_to = [Address.parse(campaign.reply_to, "reply_to")] if campaign.reply_to else []
        self.app = headers.app_name(self.sender)
        list_name = self.scope.removeprefix("list:")
        self.reason = f"You receive this because you are on the {list_name} list of {self.app}."
        self.list_id = _list_id(list_name, self.sender.domain)

    def compose(self, recipient: PendingRecipient, *, test: bool = False) -> Message:
        """The message for ``recipient``; :class:`~mailroom.errors.MessageError` when their
        data makes it impossible (a merge field their attributes lack, a bad address).
        ``test``: a test send, its subject marked and its metadata saying so."""
        to = Address.parse(recipient.address, "to").with_display_name(recipient.name or "")
        # No key: the preferences an unsubscribe may touch follow the address. A contact's
        # id is not the application's user key, and would name someone else's preferences.
        token = self.tokens.make(to, self.scope)
        link = unsubscribe_url(self.settings, token)
        rendered = self.templates.render(
            self.template,
            {
                "contact": _contact(recipient),
                "campaign": {"id": self.campaign.id, "name": self.campaign.name},
                "unsubscribe_url": link,
                "app_name": self.app,
            },
        )
        footer = Footer(
            self.reason,
            "Unsubscribe",
            link,
            postal_address=self.settings.ORGANIZATION_POSTAL_ADDRESS.strip(),
        )
        text, html = add_footer(rendered.text, rendered.html, footer)
        subject = (TEST_SUBJECT_PREFIX if test else "") + rendered.subject
        metadata: dict[str, Any] = {"campaign": self.campaign.id}
        if test:
            metadata["campaign_test"] = True
        return Message(
            to=[to],
            subject=subject,
            text=text,
            html=html,
            from_email=self.sender,
            reply_to=self.reply_to,
            message_id=recipient.message_id,
            headers={
                **headers.list_unsubscribe(self.settings, token),
                "List-Id": self.list_id,
                "Precedence": "bulk",
                **headers.notification_type(
                    self.settings.NOTIFICATION_TYPE_HEADER, f"campaign-{self.campaign.id}"
                ),
            },
            metadata=metadata,
        )


def _contact(recipient: PendingRecipient) -> Mapping[str, Any]:
    # Attributes first: a contact's own "email" or "name" attribute cannot stand in for the
    # address the message goes to.
    return {
        **(recipient.attributes or {}),
        "email": recipient.address,
        "name": recipient.name or "",
    }


def _list_id(list_name: str, domain: str) -> str:
    """RFC 2919: ``"<name>" <label.domain>``, the label the list's name in lower case with
    anything but letters, digits and '-' made '-'."""
    label = _LIST_LABEL.sub("-", list_name.lower()).strip("-") or "list"
    phrase = list_name.replace("\\", "").replace('"', "")
    if not phrase.isascii() or not phrase.isprintable():
        # The id is what filters match on: never inside an encoded word (RFC 2047).
        return f"<{label}.{domain.lower()}>"
    return f'"{phrase}" <{label}.{domain.lower()}>'
