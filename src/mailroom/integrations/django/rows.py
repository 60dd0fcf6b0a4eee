"""A Django :class:`~django.core.mail.EmailMessage` as an outbox row: Django's own bytes
(``message.message().as_bytes()``, exactly what Django's SMTP backend would send) and the
envelope Django's SMTP backend would give them, with Mailroom's per-message extras read from
attributes on the message, as django-anymail reads its own.

Django's bytes are stored rather than a translation into Mailroom's
:class:`~mailroom.message.Message`: Django lets a caller attach any ``MIMEBase``, set any
header, pick the charset and mix inline images into ``multipart/mixed``, and every one of
those must reach the recipient as Django would have sent it (the differential test in
``tests/integration/integrations/test_django_differential.py`` holds this).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from django.conf import settings as django_settings
from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address

from mailroom.config import Settings
from mailroom.errors import (
    HeaderInjectionError,
    InvalidAddressError,
    MessageError,
    MessageTooLargeError,
)
from mailroom.outbox.batch_items import check_key, check_stream, due_epoch, stored_metadata
from mailroom.outbox.vocabulary import STREAM_PRIORITIES, Status

__all__ = ["EXTRA_ATTRIBUTES", "Extras", "check_header_names", "outbox_row"]

EXTRA_ATTRIBUTES = (
    "stream",
    "idempotency_key",
    "metadata",
    "tags",
    "send_at",
    "track_opens",
    "track_clicks",
    "envelope_sender",
)
"""Attributes a caller may set on a Django message for Mailroom; never sent as headers."""


@dataclass(frozen=True)
class Extras:
    """Mailroom's per-message extras, checked."""

    stream: str = "transactional"
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None
    send_at: datetime | None = None
    track_opens: bool | None = None
    track_clicks: bool | None = None
    envelope_sender: str | None = None


def read_extras(message: EmailMessage) -> Extras:
    stream = getattr(message, "stream", None)
    if stream is None:
        stream = "transactional"
    check_stream(stream)
    key = getattr(message, "idempotency_key", None)
    if key is not None:
        check_key(key)
    metadata = stored_metadata(getattr(message, "metadata", None)) or {}
    tags = getattr(message, "tags", None)
    if tags:
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise MessageError("tags", "must be a list of str")
        metadata = {**metadata, "tags": list(tags)}
    send_at = getattr(message, "send_at", None)
    due_epoch(send_at, 0.0)  # the checks: a datetime, timezone-aware
    flags = {}
    for name in ("track_opens", "track_clicks"):
        value = getattr(message, name, None)
        if value is not None and not isinstance(value, bool):
            raise MessageError(name, f"must be True, False or None, not {value!r}")
        flags[name] = value
    envelope_sender = getattr(message, "envelope_sender", None)
    if envelope_sender is not None and not isinstance(envelope_sender, str):
        raise MessageError("envelope_sender", "must be an address (str)")
    return Extras(stream, key, metadata or None, send_at, envelope_sender=envelope_sender, **flags)


@functools.lru_cache(maxsize=4096)
def _envelope_address(address: str | tuple[str, str], encoding: str, field: str) -> str:
    """The bare address Django's SMTP backend would give ``MAIL FROM``/``RCPT TO``:
    ``sanitize_address`` (IDNA domain, RFC 2047 name), then smtplib's ``quoteaddr``.
    Cached: the same sender comes with every message, and parsing is a fifth of a send."""
    try:
        sanitized = sanitize_address(address, encoding)
    except ValueError as exc:
        raise InvalidAddressError(field, str(exc)) from None
    return parseaddr(sanitized)[1] or sanitized


def _hashable(address: object) -> str | tuple[str, str]:
    """An address as the cache can key it: a (name, address) pair Django takes as it is,
    anything else (a lazy translation) as its text."""
    if isinstance(address, tuple) and len(address) == 2:
        return (str(address[0]), str(address[1]))
    return str(address)


def fingerprint(message: EmailMessage, extras: Extras) -> str:
    """What the caller asked to send, to tell a retry from other content under one
    idempotency key: not the bytes (Django draws a new Date, Message-ID and MIME boundary on
    every call), but the message's fields."""

    def digest(value: Any) -> str:
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, bytes):
            return hashlib.sha256(value).hexdigest()
        return hashlib.sha256(str(value).encode()).hexdigest()

    headers = {
        name: str(value)
        for name, value in message.extra_headers.items()
        if name.lower() not in ("date", "message-id")
    }
    canonical = {
        "stream": extras.stream,
        "from": str(message.from_email),
        "to": [str(a) for a in message.to],
        "cc": [str(a) for a in message.cc],
        "bcc": [str(a) for a in message.bcc],
        "reply_to": [str(a) for a in message.reply_to],
        "subject": str(message.subject),
        "body": digest(message.body),
        "subtype": message.content_subtype,
        "headers": headers,
        "alternatives": [
            [digest(content), mimetype]
            for content, mimetype in getattr(message, "alternatives", ())
        ],
        "attachments": [digest(part) for part in message.attachments],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


def outbox_row(
    message: EmailMessage,
    data: bytes,
    extras: Extras,
    settings: Settings,
    now: float,
    *,
    original: EmailMessage | None = None,
) -> dict[str, Any]:
    """The row :func:`mailroom.outbox.queries.insert_messages` takes, for ``data`` (the
    message's bytes, made once by the caller). ``original``: the caller's message when
    ``message`` is a copy made for sending (tracking); the idempotency fingerprint is its."""
    encoding = message.encoding or django_settings.DEFAULT_CHARSET
    sender = _envelope_address(
        _hashable(extras.envelope_sender or message.from_email),
        encoding,
        "envelope_sender" if extras.envelope_sender else "from_email",
    )
    recipients = list(
        dict.fromkeys(_envelope_address(_hashable(a), encoding, "to") for a in message.recipients())
    )
    if len(data) > settings.EMAIL_MAX_MESSAGE_SIZE:
        raise MessageTooLargeError(
            "message",
            f"{len(data)} bytes is over the limit of {settings.EMAIL_MAX_MESSAGE_SIZE} "
            "(EMAIL_MAX_MESSAGE_SIZE)",
        )
    due_at = due_epoch(extras.send_at, now)
    key = extras.idempotency_key
    message_id = _header(data, b"message-id") or ""
    return {
        "message_id": message_id,
        "stream": extras.stream,
        "priority": STREAM_PRIORITIES.get(extras.stream, 50),
        "status": (Status.SCHEDULED if due_at > now else Status.QUEUED).value,
        "sender": sender,
        "recipients": recipients,
        "subject": str(message.subject).strip()[:500],
        "data": data,
        "smtputf8": not all(address.isascii() for address in (sender, *recipients)),
        "idempotency_key": key,
        "idempotency_fingerprint": fingerprint(original or message, extras)
        if key is not None
        else None,
        "extra": extras.metadata,
        "consent_scopes": None,
        "consent_required": None,
        "created_at": now,
        "due_at": due_at,
        "updated_at": now,
        "attempts": 0,
        "tracked_links": None,
    }


# RFC 5322 §3.6.8: a field name is one or more printable US-ASCII characters but the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")


def check_header_names(message: EmailMessage) -> None:
    """Each of the caller's header names is an RFC 5322 field name. Django checks values for
    CR/LF, not names: ``"X-Ref\\r\\nX-Injected"`` would make two header lines."""
    for name in message.extra_headers:
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise HeaderInjectionError(
                "headers",
                f"{name!r} is not a header name (printable ASCII but ':', no space, CR or LF)",
            )


def _header(data: bytes, name: bytes) -> str | None:
    """One header's unfolded value from the message's header block."""
    head = data.split(b"\r\n\r\n", 1)[0]
    unfolded = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in unfolded.split(b"\r\n"):
        field, _, value = line.partition(b":")
        if field.strip().lower() == name:
            return value.strip().decode("ascii", "replace")
    return None
