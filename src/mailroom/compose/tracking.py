"""Open and click tracking, put into a message when it is composed.

Per stream, and only when asked: a message of a stream named in ``TRACK_CLICKS`` has the
http(s) links of its HTML part rewritten to ``PUBLIC_BASE_URL/c/<token>``, and the original
URLs are returned in link-index order (the outbox keeps them in the message's
``tracked_links``; the click endpoint redirects only to those). A stream in ``TRACK_OPENS``
gets the pixel, ``<img src=PUBLIC_BASE_URL/trck/<token> width=1 height=1 alt="">``, before
``</body>``. Both are off by default, for every stream: transactional mail is tracked only
when its stream is named.

Never rewritten: ``mailto:`` and other non-http links, our own unsubscribe and preference
links (``PUBLIC_BASE_URL/unsubscribe/``, ``/preferences/``), and any URL of the message's
``List-Unsubscribe`` header — a link that must work the same whether or not tracking does.

Tokens name the message by its ``Message-ID``, so the message gets one here (the one the
outbox would otherwise give it, :func:`~mailroom.message.ids.make_message_id`), and the
recipient: the first address of ``to`` (then ``cc``, ``bcc``). Tracking is per recipient when
the message is (notifications are); a message to several people records their hits under
the first. Plain text parts are not rewritten (a long redirect URL in text helps nobody).
"""

from __future__ import annotations

import re
from dataclasses import replace

import lxml.html
from lxml import etree

from mailroom.config import Settings
from mailroom.errors import MessageError
from mailroom.message import Address, Message
from mailroom.message.address import parse_addresses
from mailroom.message.ids import make_message_id
from mailroom.tracking.tokens import TrackingTokens

__all__ = ["apply_tracking", "tracks"]

_HTTP = re.compile(r"^\s*https?://", re.IGNORECASE)
_ANGLE_URLS = re.compile(r"<([^>]*)>")
# An XHTML template's ``<?xml version="1.0" encoding="..."?>``: lxml refuses a str that names
# an encoding, and the part is re-encoded as the message says anyway, so it is dropped.
_XML_DECLARATION = re.compile(r"^\ufeff?\s*<\?xml\b[^>]*\?>\s*", re.IGNORECASE)


def tracks(settings: Settings, stream: str) -> tuple[bool, bool]:
    """(opens, clicks): what ``TRACK_OPENS`` / ``TRACK_CLICKS`` ask for ``stream``."""
    if not settings.PUBLIC_BASE_URL:
        return False, False
    return stream in settings.TRACK_OPENS, stream in settings.TRACK_CLICKS


def apply_tracking(
    message: Message, settings: Settings, stream: str
) -> tuple[Message, list[str] | None]:
    """``message`` with the pixel and tracked links its stream asks for, and the URLs the
    links stood for, by link index (``None``: clicks are not tracked on this stream).

    A message with no HTML part, no recipient, or a stream with no tracking comes back as it
    is. Raises :class:`~mailroom.errors.SettingsError` when tracking is on and ``SECRET_KEY``
    is not set, and :class:`~mailroom.errors.MessageError` for an address that is not one.
    """
    opens, clicks = tracks(settings, stream)
    recipient = _first_recipient(message)
    if not (opens or clicks) or not message.html or recipient is None:
        return message, ([] if clicks else None)
    tokens = TrackingTokens(settings)
    message_id = message.message_id or make_message_id(_sender_domain(message, settings))
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    source = _XML_DECLARATION.sub("", message.html, count=1)
    document = _parse(source)
    links: list[str] = []
    if clicks:
        kept = _untracked_urls(message, base)
        index_of: dict[str, int] = {}
        for element in document.iter("a", "area"):
            href = element.get("href")
            if href is None or not _HTTP.match(href) or href.strip() in kept:
                continue
            url = href.strip()
            if url.startswith((f"{base}/unsubscribe/", f"{base}/preferences/")):
                continue
            if url not in index_of:
                index_of[url] = len(links)
                links.append(url)
            token = tokens.click_token(message_id, recipient, index_of[url])
            element.set("href", f"{base}/c/{token}")
    if opens:
        body = document.find("body")
        if body is None:
            body = etree.SubElement(document, "body")
        pixel = etree.SubElement(body, "img")
        pixel.set("src", f"{base}/trck/{tokens.open_token(message_id, recipient)}")
        pixel.set("width", "1")
        pixel.set("height", "1")
        pixel.set("alt", "")
    html = lxml.html.tostring(document, encoding="unicode", doctype=_doctype(source))
    tracked = replace(message, html=html, message_id=message_id)
    return tracked, (links if clicks else None)


def _parse(html: str) -> lxml.html.HtmlElement:
    """The HTML part as a document; a :class:`MessageError` for one lxml cannot read, so the
    caller reports it as a bad message rather than failing on a parser's own error."""
    try:
        return lxml.html.document_fromstring(html)
    except (etree.LxmlError, ValueError) as exc:
        raise MessageError("html", f"the HTML part cannot be parsed for tracking: {exc}") from None


def _first_recipient(message: Message) -> str | None:
    for field in ("to", "cc", "bcc"):
        addresses = parse_addresses(getattr(message, field), field)
        if addresses:
            return addresses[0].addr_spec.lower()
    return None


def _sender_domain(message: Message, settings: Settings) -> str:
    sender = message.from_email or settings.DEFAULT_FROM_EMAIL
    return Address.parse(sender, "from_email").domain


def _untracked_urls(message: Message, base: str) -> set[str]:
    """The URLs of ``List-Unsubscribe``: never rewritten."""
    urls: set[str] = set()
    for name, value in message.headers.items():
        if name.lower() == "list-unsubscribe":
            urls.update(url.strip() for url in _ANGLE_URLS.findall(value))
    return urls


def _doctype(html: str) -> str | None:
    """The document's own doctype, kept as it was (lxml would drop it)."""
    match = re.match(r"\s*(<!doctype[^>]*>)", html, re.IGNORECASE)
    return match.group(1) if match else None
