"""Open and click tracking for a Django message: its HTML (the ``text/html`` alternative, or
the body of an HTML message) gets Mailroom's pixel and tracked links, as a message sent with
:func:`mailroom.send` on a tracked stream would.

``message.track_opens`` / ``track_clicks`` decide per message; left ``None``, the stream's
``TRACK_OPENS`` / ``TRACK_CLICKS`` settings do. Either way tracking needs ``PUBLIC_BASE_URL``
(and ``SECRET_KEY``) in ``MAILROOM``; a message that asks for it without them is sent
untracked, as :func:`~mailroom.compose.tracking.tracks` says for every sender.
"""

from __future__ import annotations

import copy
from typing import Any

from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.message import make_msgid

from mailroom.compose.tracking import apply_tracking, tracks
from mailroom.config import Settings
from mailroom.integrations.django.rows import Extras
from mailroom.message import Message

__all__ = ["track"]


def _streams(names: tuple[str, ...], stream: str, wanted: bool | None) -> tuple[str, ...]:
    if wanted is None:
        return names
    others = tuple(name for name in names if name != stream)
    return (*others, stream) if wanted else others


def track(
    message: EmailMessage, extras: Extras, settings: Settings
) -> tuple[EmailMessage, list[str] | None]:
    """The message to send — a copy with the tracked HTML, or ``message`` itself when nothing
    is tracked (the caller's object is never changed, so sending it again tracks it once) —
    and the URLs its links stood for (by link index), or ``None`` when clicks are not
    tracked."""
    settings = settings.model_copy(
        update={
            "TRACK_OPENS": _streams(settings.TRACK_OPENS, extras.stream, extras.track_opens),
            "TRACK_CLICKS": _streams(settings.TRACK_CLICKS, extras.stream, extras.track_clicks),
        }
    )
    opens, clicks = tracks(settings, extras.stream)
    if not (opens or clicks):
        return message, None
    html_index: int | None = None
    html: str | None = None
    if isinstance(message, EmailMultiAlternatives):
        for index, (content, mimetype) in enumerate(message.alternatives):
            if mimetype == "text/html" and isinstance(content, str):
                html_index, html = index, content
                break
    if html is None and message.content_subtype == "html":
        html = str(message.body)
    if html is None:
        return message, ([] if clicks else None)
    original = message
    message = copy.copy(original)
    message.extra_headers = dict(original.extra_headers)
    if isinstance(message, EmailMultiAlternatives):
        message.alternatives = list(message.alternatives)
    # The tokens name the message by its Message-ID: fix it now, before Django draws one.
    message_id = message.extra_headers.get("Message-ID") or make_msgid()
    message.extra_headers["Message-ID"] = message_id
    tracked, links = apply_tracking(
        Message(
            to=message.recipients()[:1],
            html=html,
            from_email=extras.envelope_sender or message.from_email,
            message_id=message_id,
        ),
        settings,
        extras.stream,
    )
    assert tracked.html is not None  # noqa: S101 - it had HTML, it keeps it
    if html_index is not None and isinstance(message, EmailMultiAlternatives):
        # Django 5.2's EmailAlternative is a named tuple of (content, mimetype).
        kind: Any = type(message.alternatives[html_index])
        message.alternatives[html_index] = kind(tracked.html, "text/html")
    else:
        message.body = tracked.html
    return message, links
