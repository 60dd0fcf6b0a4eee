"""The campaign editor's form: its fields, the draft they make, the errors the library raises
named by the field they belong to, and the preview of what is being written.

The preview is the campaign composed for one contact of its list, as
:func:`mailroom.campaigns.previews.preview` composes it (merge fields in the notification
sandbox, the footer with the unsubscribe link and the postal address): what that contact
would get, from the form as it is, saved or not. Its HTML goes to the page's sandboxed frame
through a :class:`~.template_preview.PreviewStore`, never into the page.

Errors carry the line they are on. A syntax error is found in the body as written (Markdown
included: Jinja's syntax is the same in either), so its line is the writer's. A render error
(an undefined merge field) has its line only for an HTML body: a Markdown body is rendered
from the HTML made of it, whose lines are not the writer's.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.datastructures import FormData

from mailroom.campaigns import previews
from mailroom.campaigns.store import Campaign, CampaignDraft
from mailroom.compose.templates import Template, TemplateLibrary
from mailroom.errors import CampaignError, MessageError, SettingsError, TemplateError
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.web.admin.template_preview import PartError, part_error

__all__ = [
    "FIELDS",
    "FIELD_LABELS",
    "CampaignPreview",
    "draft_of",
    "error_of",
    "errors_of",
    "form_values",
    "render_campaign_preview",
    "source_error",
    "values_of",
]

FIELDS = (
    "name",
    "audience",
    "subject",
    "from_email",
    "reply_to",
    "body_format",
    "body",
    "as_contact",
)
"""The editor's fields; ``as_contact`` is the preview's, never stored."""

FIELD_LABELS: Mapping[str, str] = {
    "name": "Name",
    "audience": "List",
    "subject": "Subject",
    "from_email": "From",
    "reply_to": "Reply-to",
    "body_format": "Format",
    "body": "Body",
    "as_contact": "Preview as",
    "settings": "Settings",
}

# What the library's MessageError.field names, as the form's field.
_LIBRARY_FIELDS: Mapping[str, str] = {
    "audience": "audience",
    "name": "name",
    "subject": "subject",
    "from_email": "from_email",
    "reply_to": "reply_to",
    "body_format": "body_format",
    "body": "body",
    "to": "as_contact",
    "address": "as_contact",
}


def form_values(form: FormData) -> dict[str, str]:
    """The editor's fields as posted (a textarea's CRLF as the LF it was typed as)."""
    values = {field: str(form.get(field) or "").replace("\r\n", "\n") for field in FIELDS}
    if values["body_format"] not in ("html", "markdown"):
        values["body_format"] = "html"
    return values


def values_of(campaign: Campaign, *, as_contact: str = "") -> dict[str, str]:
    """A stored campaign as the editor's fields."""
    return {
        "name": campaign.name,
        "audience": campaign.audience,
        "subject": campaign.subject,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to or "",
        "body_format": campaign.body_format,
        "body": campaign.body,
        "as_contact": as_contact,
    }


def draft_of(values: Mapping[str, str], *, stream: str | None = None) -> CampaignDraft:
    return CampaignDraft(
        name=values["name"],
        audience=values["audience"],
        subject=values["subject"],
        from_email=values["from_email"].strip(),
        body=values["body"],
        body_format=values["body_format"],
        reply_to=values["reply_to"].strip() or None,
        stream=stream,
    )


def source_error(library: TemplateLibrary, subject: str, body: str) -> PartError | None:
    """A syntax error in the subject or the body as written, with its line; ``None``."""
    try:
        library.check(Template(name="campaign", subject=subject, html=body))
    except TemplateError as exc:
        return _template_error(exc, body_format="html")
    return None


def _template_error(exc: TemplateError, *, body_format: str) -> PartError:
    error = part_error(exc)
    if error.part != "html":
        return error
    line = error.line if body_format == "html" or error.message.startswith("syntax") else None
    return PartError("body", line, error.message)


def error_of(exc: MessageError | SettingsError | CampaignError, *, body_format: str) -> PartError:
    """What the library refused, as the form field it is about (a template error with its
    line; a missing setting as ``settings``; a list that is not there as ``audience``)."""
    if isinstance(exc, TemplateError):
        error = _template_error(exc, body_format=body_format)
        return error if error.part in FIELD_LABELS else PartError("body", error.line, error.message)
    if isinstance(exc, MessageError):
        field = _LIBRARY_FIELDS.get(exc.field, "body")
        return PartError(field, None, str(exc).removeprefix(f"{exc.field}: "))
    if isinstance(exc, SettingsError):
        return PartError("settings", None, str(exc))
    return PartError("audience", None, str(exc))


def errors_of(
    exc: MessageError | SettingsError | CampaignError, *, body_format: str
) -> dict[str, str]:
    """:func:`error_of` as the editor shows it beside its field: ``Line 3: ...``."""
    error = error_of(exc, body_format=body_format)
    where = f"Line {error.line}: " if error.line is not None else ""
    return {error.part: where + error.message}


@dataclass(frozen=True, slots=True)
class CampaignPreview:
    """The campaign as one contact gets it, or why it cannot be shown."""

    subject: str | None
    html: str | None
    text: str | None
    to: str | None
    """The contact it was made for (``Name <address>``)."""
    errors: tuple[PartError, ...]


def _unsaved(values: Mapping[str, str], campaign_id: int, stream: str) -> Campaign:
    """The form as a campaign, to compose: the one being edited (its id in the type
    header), or a new one (id 0)."""
    now = time.time()
    return Campaign(
        id=campaign_id,
        name=values["name"],
        status=CampaignStatus.DRAFT,
        audience=values["audience"],
        subject=values["subject"],
        from_email=values["from_email"].strip(),
        reply_to=values["reply_to"].strip() or None,
        body_format=values["body_format"],
        body=values["body"],
        stream=stream,
        send_at=None,
        created_at=now,
        updated_at=now,
        started_at=None,
        finished_at=None,
        paused_reason=None,
        resumed_at=None,
        paused_from=None,
        fanout_checkpoint=None,
        fanout_done=False,
        duplicated_from=None,
    )


def _failed(*errors: PartError) -> CampaignPreview:
    return CampaignPreview(None, None, None, None, errors)


def render_campaign_preview(
    outbox: Outbox,
    library: TemplateLibrary,
    values: Mapping[str, str],
    *,
    campaign: Campaign | None = None,
) -> CampaignPreview:
    """``values`` (the editor's form) composed for the contact ``as_contact`` names, else the
    list's first; ``campaign``: the stored one being edited or shown."""
    if not values["audience"]:
        return _failed(PartError("audience", None, "choose a list: the preview is its contact's"))
    syntax = source_error(library, values["subject"], values["body"])
    if syntax is not None:
        return _failed(syntax)
    unsaved = _unsaved(
        values,
        campaign.id if campaign is not None else 0,
        campaign.stream if campaign is not None else outbox.settings.CAMPAIGN_STREAM,
    )
    try:
        message = previews.preview(
            outbox, unsaved, as_contact=values["as_contact"].strip() or None, templates=library
        )
    except CampaignError as exc:  # the contact asked for is not on the list
        return _failed(PartError("as_contact", None, str(exc)))
    except (MessageError, SettingsError) as exc:
        return _failed(error_of(exc, body_format=values["body_format"]))
    to = str(message.to[0]) if message.to else None
    return CampaignPreview(message.subject, message.html, message.text, to, ())
