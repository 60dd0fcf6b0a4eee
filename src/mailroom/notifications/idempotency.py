"""What makes a repeated ``notify`` call with the same idempotency key the same request: the
per-recipient outbox key, and the content fingerprint it is compared on."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from mailroom.message import Address, Message, content_fingerprint

__all__ = ["fingerprint", "recipient_key"]

_IDEMPOTENCY_KEY_MAX = 255


def fingerprint(message: Message, token: str | None, stream: str) -> str:
    """What a notification's idempotency key is compared on: its content, less what
    differs on every call for the same request: the noreply local part (a random token, so
    only the sender's name counts) and the unsubscribe token (signed with the time)."""

    def stable(value: str | None) -> str | None:
        return value.replace(token, "") if token and value else value

    sender = message.from_email
    name = sender.display_name if isinstance(sender, Address) else str(sender)
    return content_fingerprint(
        replace(
            message,
            from_email=None,
            subject=stable(message.subject) or "",
            text=stable(message.text),
            html=stable(message.html),
            headers={
                "From-Name": name,
                **{key: stable(value) or "" for key, value in message.headers.items()},
            },
            metadata={},
        ),
        stream=stream,
    )


def recipient_key(key: str, address: str) -> str:
    """The outbox idempotency key for one recipient of a keyed ``notify`` call: the call's key
    and the address, hashed when that would be over the outbox's limit."""
    combined = f"{key}:{address}"
    if len(combined) <= _IDEMPOTENCY_KEY_MAX:
        return combined
    return f"{key[:100]}:{hashlib.sha256(combined.encode()).hexdigest()}"
