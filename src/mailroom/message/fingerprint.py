"""What makes two calls the same request: a digest of the content a caller asked to send."""

from __future__ import annotations

import hashlib
import json

from mailroom.message.address import parse_addresses
from mailroom.message.fields import check_fields
from mailroom.message.model import Message

__all__ = ["content_fingerprint"]


def content_fingerprint(message: Message, *, stream: str) -> str:
    """A digest of what the caller asked to send, to tell a retry from a different message
    under one idempotency key: the stream, addresses, subject, bodies, the caller's headers
    and the attachments. Not the Date or Message-ID (made afresh on every call), the send
    time, or the metadata (the caller's bookkeeping, not content)."""
    message = check_fields(message)

    def addresses(values: object, field_name: str) -> list[str]:
        return [f"{a.display_name}\0{a.addr_spec}" for a in parse_addresses(values, field_name)]

    canonical = {
        "stream": stream,
        "from": addresses(message.from_email, "from_email"),
        "to": addresses(message.to, "to"),
        "cc": addresses(message.cc, "cc"),
        "bcc": addresses(message.bcc, "bcc"),
        "reply_to": addresses(message.reply_to, "reply_to"),
        "subject": message.subject.strip(),
        "text": message.text,
        "html": message.html,
        "headers": list(message.headers.items()),
        "attachments": [
            [a.filename, a.mimetype, a.content_id, hashlib.sha256(a.content).hexdigest()]
            for a in message.attachments
        ],
    }
    encoded = json.dumps(canonical, separators=(",", ":")).encode("ascii")
    return hashlib.sha256(encoded).hexdigest()
