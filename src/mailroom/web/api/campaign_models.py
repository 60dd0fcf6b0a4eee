"""The bodies of ``/api/v1/campaigns``: what a client sends, and what it reads back.

Requests are checked in two steps, as for messages: the shape here (types, lengths), the
content by the campaign store (addresses, the audience, the template's syntax), whose errors
name the field; both answer 422 with that field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from mailroom.campaigns.previews import MAX_TEST_ADDRESSES
from mailroom.campaigns.store import Campaign
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.web.api.message_models import epoch_time

__all__ = [
    "CampaignChanges",
    "CampaignIn",
    "CampaignList",
    "CampaignOut",
    "CampaignStats",
    "CampaignSummary",
    "ControlResult",
    "DuplicateIn",
    "SendIn",
    "TestIn",
    "TestQueued",
    "TimePoint",
    "full",
    "summary",
]

BodyFormat = Literal["html", "markdown"]

# Upper bounds of the shape; the store checks the exact rules and says them.
_NAME = "What the admin pages and listings call it."
_AUDIENCE = "Who it goes to: `list:<name>` (a mailing list) or `app:<name>`."
_SUBJECT = "Its subject; merge fields allowed."
_FROM = "The From address: `News <news@example.com>`."
_REPLY_TO = "A Reply-To address; null: none."
_BODY = "The HTML or Markdown source, with merge fields (`{{ contact.name }}`)."
_FORMAT = "How `body` is written."
_STREAM = "Its stream; null: `CAMPAIGN_STREAM`."
_LINE_MAX = 998  # RFC 5322 §2.1.1: a subject or an address is one line
_BODY_MAX = 1_000_000


class CampaignIn(BaseModel):
    """A campaign to write, stored as a draft."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description=_NAME)
    audience: str = Field(max_length=200, description=_AUDIENCE)
    subject: str = Field(max_length=_LINE_MAX, description=_SUBJECT)
    from_email: str = Field(max_length=_LINE_MAX, description=_FROM)
    body: str = Field(max_length=_BODY_MAX, description=_BODY)
    body_format: BodyFormat = Field(default="html", description=_FORMAT)
    reply_to: str | None = Field(default=None, max_length=_LINE_MAX, description=_REPLY_TO)
    stream: str | None = Field(default=None, min_length=1, max_length=64, description=_STREAM)


class CampaignChanges(BaseModel):
    """What to change in a draft: the fields given replace the draft's, the others stay.
    ``reply_to`` and ``stream`` may be null (none; the default stream); the others may be
    left out but not null."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200, description=_NAME)
    audience: str | None = Field(default=None, max_length=200, description=_AUDIENCE)
    subject: str | None = Field(default=None, max_length=_LINE_MAX, description=_SUBJECT)
    from_email: str | None = Field(default=None, max_length=_LINE_MAX, description=_FROM)
    body: str | None = Field(default=None, max_length=_BODY_MAX, description=_BODY)
    body_format: BodyFormat | None = Field(default=None, description=_FORMAT)
    reply_to: str | None = Field(default=None, max_length=_LINE_MAX, description=_REPLY_TO)
    stream: str | None = Field(default=None, min_length=1, max_length=64, description=_STREAM)

    @field_validator("name", "audience", "subject", "from_email", "body", "body_format")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs on given values only: a field left out is None by default, and stays as it is.
        if value is None:
            raise ValueError("may be left out, not null")
        return value


class CampaignSummary(BaseModel):
    """A campaign as a listing shows it: everything but its body."""

    id: int
    name: str
    status: CampaignStatus
    audience: str
    subject: str
    from_email: str
    reply_to: str | None
    body_format: str
    stream: str
    send_at: datetime | None = Field(description="Scheduled: not before then.")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    paused_reason: str | None = Field(description="Why it paused when not by hand.")
    fanout_done: bool = Field(description="Its whole audience is in its ledger.")
    duplicated_from: int | None


class CampaignOut(CampaignSummary):
    """A campaign with its body."""

    body: str


class CampaignList(BaseModel):
    """Newest first."""

    items: list[CampaignSummary]


class DuplicateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, max_length=200, description="The copy's name; null: `Copy of <name>`."
    )


class TestIn(BaseModel):
    """Where to send a test of the campaign (marked `[Test]`, not in its ledger)."""

    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(
        min_length=1,
        max_length=MAX_TEST_ADDRESSES,
        description=f"1 to {MAX_TEST_ADDRESSES} addresses to send the test to.",
    )
    as_contact: str | None = Field(
        default=None,
        max_length=998,
        description="Whose merge fields: a contact of its list; null: the list's first.",
    )


class TestQueued(BaseModel):
    outbox_ids: list[int] = Field(description="One test message per address, in order.")


class SendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_at: AwareDatetime | None = Field(
        default=None, description="Schedule it for then; null or past: start now."
    )

    @field_validator("send_at")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("must fall in the years 1 to 9999 in UTC") from None
        return value


class ControlResult(BaseModel):
    """The campaign after a pause, resume, cancel or retry of its failed recipients."""

    campaign: CampaignSummary
    withdrawn: int = Field(
        default=0, description="Messages taken back out of the outbox (pause, cancel)."
    )
    requeued: int = Field(default=0, description="Failed messages queued again (retry-failed).")


class Recipients(BaseModel):
    """The ledger by where each recipient is."""

    pending: int
    queued: int
    sent: int
    failed: int
    suppressed: int
    skipped: int
    total: int = Field(description="Everyone in the ledger so far.")


class Tally(BaseModel):
    total: int
    unique: int = Field(description="Recipients (each counted once).")


class LinkClicks(BaseModel):
    link_index: int = Field(description="The link's place among the tracked links, from 0.")
    total: int
    unique: int
    scanner: int = Field(description="Follows that look like a link scanner's, counted apart.")


class Clicks(Tally):
    links: list[LinkClicks]


class TimePoint(BaseModel):
    at: datetime = Field(description="The bucket's start.")
    sent: int
    failed: int
    opened: int
    clicked: int


class CampaignStats(BaseModel):
    """Derived from the ledger, the messages and their events when asked."""

    id: int
    status: CampaignStatus
    paused_reason: str | None
    fanout_done: bool
    recipients: Recipients
    opens: Tally = Field(description="Opens by people, as far as can be told.")
    proxy_opens: Tally = Field(
        description="Pixel fetches by a mail provider's proxy (Apple MPP, Gmail): the mail "
        "arrived, not that anyone read it."
    )
    clicks: Clicks
    unsubscribed: int
    bounced: int
    complained: int
    timeline: list[TimePoint] | None = Field(
        default=None, description="With `?timeline=SECONDS`: buckets, oldest first."
    )


def summary(campaign: Campaign) -> CampaignSummary:
    return CampaignSummary(**_fields(campaign))


def full(campaign: Campaign) -> CampaignOut:
    return CampaignOut(**_fields(campaign), body=campaign.body)


def _fields(campaign: Campaign) -> dict[str, object]:
    def when(epoch: float | None) -> datetime | None:
        return None if epoch is None else epoch_time(epoch)

    return {
        "id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "audience": campaign.audience,
        "subject": campaign.subject,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to,
        "body_format": campaign.body_format,
        "stream": campaign.stream,
        "send_at": when(campaign.send_at),
        "created_at": epoch_time(campaign.created_at),
        "updated_at": epoch_time(campaign.updated_at),
        "started_at": when(campaign.started_at),
        "finished_at": when(campaign.finished_at),
        "paused_reason": campaign.paused_reason,
        "fanout_done": campaign.fanout_done,
        "duplicated_from": campaign.duplicated_from,
    }
