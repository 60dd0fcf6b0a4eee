"""What a caller hands us (:class:`Message`, with its :class:`Attachment` files), and what we
hand a transport (:class:`Envelope`)."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mailroom.message.address import AddressInput

__all__ = ["Attachment", "Envelope", "Message"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message. With ``content_id`` it is an inline part of the html."""

    filename: str
    content: bytes
    mimetype: str = "application/octet-stream"
    content_id: str | None = None

    @classmethod
    def from_path(
        cls, path: str | Path, mimetype: str | None = None, content_id: str | None = None
    ) -> Attachment:
        p = Path(path)
        guessed = mimetype or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return cls(p.name, p.read_bytes(), guessed, content_id)

    @classmethod
    def from_bytes(
        cls,
        filename: str,
        content: bytes,
        mimetype: str | None = None,
        content_id: str | None = None,
    ) -> Attachment:
        guessed = mimetype or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return cls(filename, content, guessed, content_id)


@dataclass(frozen=True)
class Message:
    """What a caller wants sent. Nothing is validated until :func:`build_envelope`.

    ``to``, ``cc``, ``bcc`` and ``reply_to`` take an address, a list of them, or a string of
    comma-separated addresses (``"ada@x, Bob <bob@y>"``); ``None`` there, and for ``headers``,
    ``metadata`` and ``attachments``, means none.
    """

    to: Sequence[AddressInput] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    from_email: AddressInput | None = None
    cc: Sequence[AddressInput] = ()
    bcc: Sequence[AddressInput] = ()
    reply_to: Sequence[AddressInput] = ()
    attachments: Sequence[Attachment] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    date: datetime | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message ready for a transport: SMTP envelope plus the exact bytes, built once."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    smtputf8: bool = False
