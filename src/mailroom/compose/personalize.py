"""One recipient's message of a mailing: the template rendered for them, with the headers,
the footer and their unsubscribe link.

Notifications call it once per recipient; so can anything else that mails many people on the
app's behalf (campaigns), without a notifier. Who may be mailed, and the unsubscribe token,
are the caller's to decide: this module only puts them into the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mailroom.compose import headers
from mailroom.compose.footer import Footer, add_footer
from mailroom.compose.links import deep_link
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.config import Settings
from mailroom.consent.tokens import unsubscribe_url
from mailroom.message import Address, Message

__all__ = ["FooterFor", "personalize"]

FooterFor = Callable[[str, str | None], Footer]
"""The footer for a message, given the app's name and the recipient's unsubscribe link
(``None`` when the message has none)."""


def personalize(
    templates: TemplateLibrary,
    template: str | Template,
    context: Mapping[str, Any],
    *,
    to: Address,
    settings: Settings,
    type_name: str,
    footer: FooterFor,
    unsubscribe_token: str | None = None,
    actor_name: str = "",
    link: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Message:
    """The message of ``template`` for the one recipient ``to``.

    ``context`` is the template's variables; added to it are ``recipient`` (name, email),
    ``actor`` (the name of the person whose action caused the mail, or ``None``), ``link``
    (``link``, a path in the app, made absolute with ``FRONTEND_BASE_URL``),
    ``unsubscribe_url``, ``app_name`` and ``notification_type`` (``type_name``, which also goes
    into the type header). With an ``unsubscribe_token`` the message carries
    ``List-Unsubscribe`` with one-click, and the footer its link. The sender reads
    "<actor> via <app>" at the noreply address; the subject gets ``EMAIL_SUBJECT_PREFIX``.

    Raises :class:`~mailroom.errors.MessageError` when this recipient's message cannot be
    built (a template error on their data, a field over a limit, a full URL as ``link``).
    """
    app_address = Address.parse(settings.DEFAULT_FROM_EMAIL, "DEFAULT_FROM_EMAIL")
    app = headers.app_name(app_address)
    extra_headers = {
        **headers.auto_submitted(),
        **headers.notification_type(settings.NOTIFICATION_TYPE_HEADER, type_name),
    }
    unsubscribe_link = None
    if unsubscribe_token is not None:
        unsubscribe_link = unsubscribe_url(settings, unsubscribe_token)
        extra_headers.update(headers.list_unsubscribe(settings, unsubscribe_token))
    rendered = templates.render(
        template,
        {
            **context,
            "recipient": {"name": to.display_name, "email": to.addr_spec},
            "actor": {"name": actor_name} if actor_name else None,
            "link": deep_link(settings.FRONTEND_BASE_URL, link),
            "unsubscribe_url": unsubscribe_link,
            "app_name": app,
            "notification_type": type_name,
        },
    )
    text, html = add_footer(rendered.text, rendered.html, footer(app, unsubscribe_link))
    sender = headers.noreply_sender(
        Address.parse(settings.noreply_address, "NOREPLY_EMAIL_ADDRESS"),
        headers.sender_display_name(app, actor_name),
        tokenized=settings.ADD_TOKENS_TO_NOREPLY_ADDRESS,
    )
    return Message(
        to=[to],
        subject=headers.prefixed_subject(settings.EMAIL_SUBJECT_PREFIX, rendered.subject),
        text=text,
        html=html,
        from_email=sender,
        headers=extra_headers,
        metadata=dict(metadata or {}),
    )
