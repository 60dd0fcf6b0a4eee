"""Campaigns as stored: written (created, edited while a draft, duplicated), then scheduled or
started. Once it is scheduled its content is fixed: what the first recipient got is what the
last one gets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select

from mailroom.campaigns.audiences import LIST_PREFIX, audience_pages, check_audience
from mailroom.campaigns.composer import campaign_template
from mailroom.compose.templates import TemplateLibrary
from mailroom.config import Settings
from mailroom.errors import (
    CampaignError,
    CampaignNotFoundError,
    HeaderInjectionError,
    MessageError,
    SettingsError,
)
from mailroom.message import Address
from mailroom.outbox import campaign_queries as q
from mailroom.outbox.batch_items import check_stream
from mailroom.outbox.schema import mailing_lists
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus

__all__ = [
    "BODY_FORMATS",
    "Campaign",
    "CampaignDraft",
    "Campaigns",
    "check_sendable",
    "list_id_of",
    "read_campaign",
    "read_campaigns",
]

BODY_FORMATS = ("html", "markdown")
_NAME_MAX = 200
_SUBJECT_MAX = 998  # RFC 5322 §2.1.1: a line's limit, and a subject is one line
_BODY_MAX = 1_000_000  # characters of source: a newsletter, not an archive
_EDITABLE = (CampaignStatus.DRAFT,)


@dataclass(frozen=True, slots=True)
class CampaignDraft:
    """What a campaign says and who it goes to; everything an editor can change."""

    name: str
    audience: str
    """``list:<name>`` or ``app:<name>``."""
    subject: str
    from_email: str
    body: str
    body_format: str = "html"
    reply_to: str | None = None
    stream: str | None = None
    """``None``: ``CAMPAIGN_STREAM``."""


@dataclass(frozen=True, slots=True)
class Campaign:
    """A stored campaign."""

    id: int
    name: str
    status: CampaignStatus
    audience: str
    subject: str
    from_email: str
    reply_to: str | None
    body_format: str
    body: str
    stream: str
    send_at: float | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    paused_reason: str | None
    resumed_at: float | None
    paused_from: str | None
    fanout_checkpoint: Any
    fanout_done: bool
    duplicated_from: int | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Campaign:
        values = row._mapping
        return cls(
            **{
                field.name: values[field.name]
                for field in fields(cls)
                if field.name not in {"status", "fanout_done"}
            },
            status=CampaignStatus(values["status"]),
            fanout_done=bool(values["fanout_done"]),
        )

    @property
    def list_name(self) -> str | None:
        """The mailing list's name, for a list audience."""
        if self.audience.startswith(LIST_PREFIX):
            return self.audience.removeprefix(LIST_PREFIX)
        return None

    def draft(self) -> CampaignDraft:
        return CampaignDraft(
            name=self.name,
            audience=self.audience,
            subject=self.subject,
            from_email=self.from_email,
            body=self.body,
            body_format=self.body_format,
            reply_to=self.reply_to,
            stream=self.stream,
        )


def check_sendable(settings: Settings) -> None:
    """What sending any campaign needs, each missing one named as its setting: the postal
    address every footer carries (CAN-SPAM) and what the unsubscribe link is made of."""
    if not settings.ORGANIZATION_POSTAL_ADDRESS.strip():
        raise SettingsError(
            "ORGANIZATION_POSTAL_ADDRESS",
            "a campaign cannot be sent without the organisation's postal address, which every "
            "campaign's footer carries (CAN-SPAM); set it, e.g. '1 Main St, Springfield, "
            "IL 62701, USA'",
        )
    if not settings.PUBLIC_BASE_URL:
        raise SettingsError(
            "PUBLIC_BASE_URL",
            "a campaign's unsubscribe links (in its footer and List-Unsubscribe) are made of "
            "it; set it to where `mailroom serve` is reached from outside",
        )
    settings.secret_key("sign a campaign's unsubscribe links")  # SettingsError if unset


def list_id_of(connection: Connection, name: str) -> int | None:
    found = connection.execute(
        select(mailing_lists.c.id).where(mailing_lists.c.name == name)
    ).scalar_one_or_none()
    return int(found) if found is not None else None


def read_campaign(connection: Connection, campaign_id: int) -> Campaign:
    """The campaign ``campaign_id`` as ``connection`` sees it (a read-only one will do)."""
    row = q.campaign_row(connection, campaign_id)
    if row is None:
        raise CampaignNotFoundError(campaign_id)
    return Campaign.from_row(row)


def read_campaigns(connection: Connection, *, limit: int = 100) -> list[Campaign]:
    """The newest ``limit`` campaigns, newest first."""
    return [Campaign.from_row(row) for row in q.list_campaigns(connection, limit=limit)]


class Campaigns:
    """Campaigns in ``outbox``'s database."""

    def __init__(self, outbox: Outbox, templates: TemplateLibrary | None = None) -> None:
        self.outbox = outbox
        self.settings = outbox.settings
        self.templates = templates or TemplateLibrary(
            engine=None,
            render_timeout=self.settings.TEMPLATE_RENDER_TIMEOUT,
            max_output_chars=self.settings.TEMPLATE_MAX_OUTPUT_CHARS,
        )

    # -- writing ----------------------------------------------------------------------------

    def create(self, draft: CampaignDraft) -> int:
        """Check ``draft`` and store it as a draft; its id."""
        draft = self._checked(draft)
        now = time.time()
        self.outbox.ensure_schema()
        with self.outbox.engine.begin() as connection:
            self._check_audience_exists(connection, draft.audience)
            return q.insert_campaign(connection, {**_values(draft), **_fresh(now)})

    def update(self, campaign_id: int, draft: CampaignDraft) -> Campaign:
        """Replace a draft's content; refused once it is scheduled or sending."""
        draft = self._checked(draft)
        with self.outbox.engine.begin() as connection:
            current = self._locked(connection, campaign_id)
            if current.status not in _EDITABLE:
                raise CampaignError(
                    f"campaign {campaign_id} is {current.status.value}: only a draft can be "
                    "edited (duplicate it to write a new one)"
                )
            self._check_audience_exists(connection, draft.audience)
            q.update_campaign(
                connection, campaign_id, {**_values(draft), "updated_at": time.time()}
            )
        return self.get(campaign_id)

    def duplicate(self, campaign_id: int, *, name: str | None = None) -> int:
        """A new draft with the content of ``campaign_id`` (in any state); its id."""
        original = self.get(campaign_id)
        # Checked as a new draft is: the name is new, and the rules may be newer than the
        # original.
        draft = self._checked(replace(original.draft(), name=name or _copy_name(original.name)))
        now = time.time()
        with self.outbox.engine.begin() as connection:
            return q.insert_campaign(
                connection, {**_values(draft), **_fresh(now), "duplicated_from": campaign_id}
            )

    def delete(self, campaign_id: int) -> None:
        """Delete a draft (its ledger is empty); refused in any other state."""
        with self.outbox.engine.begin() as connection:
            current = self._locked(connection, campaign_id)
            if current.status not in _EDITABLE:
                raise CampaignError(
                    f"campaign {campaign_id} is {current.status.value}: only a draft can be "
                    "deleted; cancel it instead"
                )
            q.delete_campaign(connection, campaign_id)

    # -- starting ---------------------------------------------------------------------------

    def start(self, campaign_id: int, *, send_at: datetime | None = None) -> Campaign:
        """Send the campaign now, or schedule it for ``send_at``: its content is fixed from
        here. Refused without what every campaign needs (:func:`check_sendable`)."""
        check_sendable(self.settings)
        when = None
        if send_at is not None:
            if send_at.tzinfo is None:
                raise MessageError("send_at", "must be timezone-aware")
            when = send_at.timestamp()
        now = time.time()
        with self.outbox.engine.begin() as connection:
            current = self._locked(connection, campaign_id)
            if current.status not in {CampaignStatus.DRAFT, CampaignStatus.SCHEDULED}:
                raise CampaignError(
                    f"campaign {campaign_id} is {current.status.value}: only a draft or a "
                    "scheduled campaign can be started"
                )
            self._check_audience_exists(connection, current.audience)
            later = when is not None and when > now
            q.update_campaign(
                connection,
                campaign_id,
                {
                    "status": (CampaignStatus.SCHEDULED if later else CampaignStatus.SENDING).value,
                    "send_at": when,
                    "started_at": None if later else now,
                    "updated_at": now,
                },
            )
        return self.get(campaign_id)

    # -- reading ----------------------------------------------------------------------------

    def get(self, campaign_id: int) -> Campaign:
        self.outbox.ensure_schema()
        with self.outbox.engine.connect() as connection:
            return read_campaign(connection, campaign_id)

    def list(self, *, limit: int = 100) -> list[Campaign]:
        self.outbox.ensure_schema()
        with self.outbox.engine.connect() as connection:
            return read_campaigns(connection, limit=limit)

    # -- helpers ----------------------------------------------------------------------------

    def _locked(self, connection: Connection, campaign_id: int) -> Campaign:
        row = q.lock_campaign(connection, campaign_id)
        if row is None:
            raise CampaignNotFoundError(campaign_id)
        return Campaign.from_row(row)

    def _check_audience_exists(self, connection: Connection, audience: str) -> None:
        if audience.startswith(LIST_PREFIX):
            name = audience.removeprefix(LIST_PREFIX)
            if list_id_of(connection, name) is None:
                raise CampaignError(
                    f"there is no mailing list {name!r} (create it with `mailroom lists "
                    "create` or import one)",
                    field="audience",
                )
        elif audience_pages(audience) is None:
            raise CampaignError(
                f"no audience {audience!r} is registered in this process "
                "(mailroom.campaigns.audiences.register_audience)",
                field="audience",
            )

    def _checked(self, draft: CampaignDraft) -> CampaignDraft:
        for field_name in ("name", "audience", "body", "stream"):
            # PostgreSQL's text cannot hold NUL (SQLite's can): refused alike on both.
            if "\x00" in (getattr(draft, field_name) or ""):
                raise MessageError(field_name, "must not contain a NUL character")
        name = " ".join(draft.name.split())
        if not name or len(name) > _NAME_MAX:
            raise MessageError("name", f"must be 1 to {_NAME_MAX} characters")
        check_audience(draft.audience)
        subject = draft.subject.strip()
        if not subject or len(subject) > _SUBJECT_MAX:
            raise MessageError("subject", f"must be 1 to {_SUBJECT_MAX} characters")
        if "\r" in subject or "\n" in subject or "\x00" in subject:
            raise HeaderInjectionError("subject", "must be one line (no CR, LF or NUL)")
        from_email = str(Address.parse(draft.from_email, "from_email"))
        reply_to = str(Address.parse(draft.reply_to, "reply_to")) if draft.reply_to else None
        if draft.body_format not in BODY_FORMATS:
            raise MessageError("body_format", f"must be one of {', '.join(BODY_FORMATS)}")
        if not draft.body.strip() or len(draft.body) > _BODY_MAX:
            raise MessageError("body", f"must be 1 to {_BODY_MAX:,} characters")
        stream = draft.stream or self.settings.CAMPAIGN_STREAM
        check_stream(stream)
        checked = replace(
            draft,
            name=name,
            subject=subject,
            from_email=from_email,
            reply_to=reply_to,
            stream=stream,
        )
        # A syntax error in a merge field is the writer's to see now, with its line, not
        # the first recipient's composition's.
        self.templates.check(campaign_template(checked.subject, checked.body, checked.body_format))
        return checked


def _values(draft: CampaignDraft) -> Mapping[str, Any]:
    return {
        "name": draft.name,
        "audience": draft.audience,
        "subject": draft.subject,
        "from_email": draft.from_email,
        "reply_to": draft.reply_to,
        "body_format": draft.body_format,
        "body": draft.body,
        "stream": draft.stream,
    }


def _fresh(now: float) -> dict[str, Any]:
    return {
        "status": CampaignStatus.DRAFT.value,
        "created_at": now,
        "updated_at": now,
        "fanout_done": False,
    }


def _copy_name(name: str) -> str:
    return f"Copy of {name}"[:_NAME_MAX]
