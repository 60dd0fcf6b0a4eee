"""The bodies of ``/api/v1/messages``: what a client sends, and what it reads back.

Requests are checked in two steps: the shape here (types, base64, sizes of lists), the content
by the outbox (addresses, header injection, the size of the built message), whose
:class:`~mailroom.errors.MessageError` names the field; both answer 422 with that field.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from mailroom.message import Attachment, Message

__all__ = [
    "API_KEY_METADATA",
    "AttachmentIn",
    "AttemptOut",
    "EventOut",
    "MessageCreated",
    "MessageIn",
    "MessageOut",
    "StatusChange",
    "epoch_time",
    "owner_of",
]

API_KEY_METADATA = "mailroom.api_key"
"""The metadata entry where a message sent through the API keeps the id of the key that sent
it: a ``send`` key reads back only messages that name it there. A client's own value for
it is replaced."""

Addresses = Annotated[
    list[Annotated[str, Field(max_length=998)]],
    Field(max_length=1000, description="Addresses: `ada@example.com` or `Ada <ada@example.com>`."),
]


class AttachmentIn(BaseModel):
    """A file to attach, its bytes in base64 (RFC 4648 §4, standard alphabet)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="The file's name.")
    content: str = Field(description="The file's bytes, base64-encoded.")
    content_type: str | None = Field(
        default=None,
        max_length=255,
        description="Its MIME type; guessed from the filename when left out.",
    )

    @field_validator("content")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64 (standard alphabet, with padding)") from None
        return value

    def attachment(self) -> Attachment:
        content = base64.b64decode(self.content, validate=True)
        return Attachment.from_bytes(self.filename, content, self.content_type)


class MessageIn(BaseModel):
    """One message to send. Everything but ``to`` is optional; the sender defaults to
    ``DEFAULT_FROM_EMAIL``."""

    model_config = ConfigDict(extra="forbid")

    to: Addresses = Field(min_length=1, description="The recipients (at least one).")
    subject: str = Field(default="", max_length=10_000, description="The subject line.")
    text: str | None = Field(default=None, description="The plain text body.")
    html: str | None = Field(default=None, description="The HTML body.")
    from_email: str | None = Field(
        default=None, max_length=998, description="The sender; `DEFAULT_FROM_EMAIL` if left out."
    )
    cc: Addresses = Field(default_factory=list, description="Copy recipients.")
    bcc: Addresses = Field(default_factory=list, description="Blind copy recipients.")
    reply_to: Addresses = Field(default_factory=list, description="Where replies go.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra header fields, name → value."
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    stream: str = Field(
        default="transactional",
        min_length=1,
        max_length=64,
        description="The stream: `transactional` is sent before `bulk`; others rank between.",
    )
    send_at: AwareDatetime | None = Field(
        default=None, description="Send no earlier than this time (with a time zone)."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Your own JSON data, kept with the message and shown when it is read back.",
    )

    def message(self, api_key_id: int) -> Message:
        """The message to commit, its metadata naming the key that sent it."""
        return Message(
            to=self.to,
            subject=self.subject,
            text=self.text,
            html=self.html,
            from_email=self.from_email,
            cc=self.cc,
            bcc=self.bcc,
            reply_to=self.reply_to,
            attachments=[a.attachment() for a in self.attachments],
            headers=self.headers,
            metadata={**self.metadata, API_KEY_METADATA: api_key_id},
        )


class MessageCreated(BaseModel):
    """The outbox id of the message (the same id again for a repeated ``Idempotency-Key``)."""

    id: int = Field(description="The message's outbox id: `GET /api/v1/messages/{id}`.")


class AttemptOut(BaseModel):
    """One try to hand the message over, for one recipient."""

    attempt: int = Field(description="1 for the first try (again 1 after a retry).")
    at: datetime
    duration_ms: float
    recipient: str
    transport: str
    outcome: str = Field(description="`sent`, `deferred` or `failed` for this recipient.")
    code: int | None = Field(description="The relay's reply code, if any.")
    enhanced_status: str | None = Field(description="The RFC 3463 status, if any.")
    server_text: str | None = Field(description="The relay's reply text, if any.")
    possible_duplicate: bool


class EventOut(BaseModel):
    """One event of the message (queued, sent, deferred, failed, opened, clicked...)."""

    type: str
    recipient: str
    at: datetime
    label: str | None = Field(description="For opens and clicks: human, prefetch or scanner.")
    link_index: int | None = Field(description="For clicks: which link.")
    detail: dict[str, Any] | None


class MessageOut(BaseModel):
    """A message in the outbox, with its send log and events."""

    id: int
    message_id: str = Field(description="The Message-ID header it is sent with.")
    status: str = Field(
        description="queued, scheduled, sending, sent, deferred, failed, cancelled or suppressed."
    )
    stream: str
    sender: str
    recipients: list[str]
    subject: str
    attempts: int = Field(description="Tries so far (reset by a retry).")
    created_at: datetime
    due_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    last_error: str | None
    metadata: dict[str, Any]
    attempt_log: list[AttemptOut]
    events: list[EventOut]


class StatusChange(BaseModel):
    """A message's status after a cancel or a retry."""

    id: int
    status: str


def epoch_time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def owner_of(extra: dict[str, Any] | None) -> int | None:
    """The id of the API key that sent a message, if one did."""
    owner = (extra or {}).get(API_KEY_METADATA)
    return owner if isinstance(owner, int) and not isinstance(owner, bool) else None
