"""One message of a batch (:class:`BatchItem`), and the checks on what a caller passes with
it (stream, idempotency key, metadata, send time, tracked links), each a
:class:`~mailroom.errors.MessageError` naming the field, made before anything is written."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailroom.errors import MessageError
from mailroom.message import Message

__all__ = [
    "BatchItem",
    "check_key",
    "check_stream",
    "due_epoch",
    "message_from_fields",
    "stored_links",
    "stored_metadata",
]

_STREAM_NAME_MAX = 64


_KEY_MAX = 255  # the column's width
_MESSAGE_FIELDS = frozenset(f.name for f in dataclasses.fields(Message))


def message_from_fields(fields: dict[str, Any]) -> Message:
    unknown = sorted(set(fields) - _MESSAGE_FIELDS)
    if unknown:
        raise MessageError(
            unknown[0],
            f"is not a field of a message; the fields are {', '.join(sorted(_MESSAGE_FIELDS))}",
        )
    return Message(**fields)


def check_key(key: object) -> None:
    if not isinstance(key, str):
        raise MessageError("idempotency_key", f"must be a str, not {type(key).__name__}")
    if not key or len(key) > _KEY_MAX:
        raise MessageError("idempotency_key", f"must be 1 to {_KEY_MAX} characters")


def stored_metadata(value: object) -> dict[str, Any] | None:
    """The caller's metadata as stored (JSON), or a MessageError naming the field."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise MessageError("metadata", f"must be a dict, not {type(value).__name__}")
    if not value:
        return None
    try:
        # allow_nan=False: NaN and Infinity are not JSON (RFC 8259 §6); PostgreSQL refuses them.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MessageError(
            "metadata",
            f"must be JSON: str, int, float, bool, None, and lists and dicts of them ({exc})",
        ) from None
    return dict(value)


def check_stream(stream: object) -> None:
    if not isinstance(stream, str) or not stream or len(stream) > _STREAM_NAME_MAX:
        raise MessageError("stream", f"must be 1 to {_STREAM_NAME_MAX} characters")


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One message of :meth:`Outbox.send_batch`, with its own stream, send time and key."""

    message: Message
    stream: str = "transactional"
    send_at: datetime | None = None
    idempotency_key: str | None = None
    tracked_links: Sequence[str] | None = None
    """The URLs click tracking rewrote, by link index (see ``apply_tracking``)."""
    fingerprint: str | None = None
    """What the key is compared on, if not the digest of the message: that of the request
    before tracking, whose tokens differ on every call."""


def stored_links(value: Sequence[str] | None) -> list[str] | None:
    """The tracked links as stored: a JSON list of URLs, or none (no click tracking)."""
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(url, str) for url in value):
        raise MessageError("tracked_links", "must be a list of URLs")
    return list(value)


def due_epoch(when: datetime | None, now: float) -> float:
    if when is None:
        return now
    if not isinstance(when, datetime):
        raise MessageError("send_at", f"must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None:
        raise MessageError("send_at", "must be timezone-aware (e.g. datetime.now(UTC) + delta)")
    return when.timestamp()
