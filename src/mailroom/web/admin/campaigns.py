"""Campaigns: the list, and the editor that writes a draft (new or edited) with its live
preview as a contact of its list; a campaign duplicated or a draft deleted. The campaign's
own page (progress, results, sending) is :mod:`.campaign_page`.

Thin, as every admin page: writing is :class:`mailroom.campaigns.store.Campaigns` (what
``mailroom campaign create`` calls), the preview :func:`mailroom.campaigns.previews.preview`
through :mod:`.campaign_forms`, the reads :mod:`mailroom.outbox.campaign_view_queries`.

The editor previews as the template editor does: the "Preview" button posts the form and
gets the page back with the preview (no script needed), and ``campaign_editor.js`` asks
``/admin/api/campaigns/preview`` after each pause in typing and puts the answer in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from mailroom.access import AdminUser
from mailroom.campaigns.audiences import LIST_PREFIX
from mailroom.campaigns.store import Campaign, Campaigns, check_sendable
from mailroom.errors import CampaignError, MessageError, SettingsError
from mailroom.outbox import campaign_view_queries as views
from mailroom.outbox.vocabulary import CampaignStatus, RecipientStatus
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.campaign_forms import (
    FIELD_LABELS,
    FIELDS,
    CampaignPreview,
    draft_of,
    errors_of,
    form_values,
    render_campaign_preview,
    values_of,
)
from mailroom.web.admin.csrf import CheckedForm, check_csrf_header, read_bounded_form
from mailroom.web.admin.previews import PREVIEW_HEADERS
from mailroom.web.admin.rendering import NavEntry, flash, render_page
from mailroom.web.admin.template_preview import PreviewStore
from mailroom.web.dependencies import ReadEngine, ServiceOutbox

__all__ = [
    "CAMPAIGNS_ENTRY",
    "PREVIEWS",
    "ServiceCampaigns",
    "SettingProblem",
    "campaign_path",
    "missing_campaign",
    "router",
    "sendable_problem",
]

CAMPAIGNS_ENTRY = NavEntry("campaigns", "Campaigns", "/campaigns")

router = APIRouter()

PREVIEWS = PreviewStore()
"""One store per process (the service is one process): the editor's and the campaign page's
previews, minutes each."""

CampaignId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _campaigns_of(request: Request, outbox: ServiceOutbox) -> Campaigns:
    """The app's :class:`Campaigns`, made once: its template library keeps what it compiled
    (the live preview compiles the body at each pause in typing)."""
    found: Campaigns | None = getattr(request.app.state, "admin_campaigns", None)
    if found is None or found.outbox is not outbox:
        found = Campaigns(outbox)
        request.app.state.admin_campaigns = found
    return found


ServiceCampaigns = Annotated[Campaigns, Depends(_campaigns_of)]


async def _script_form(request: Request) -> FormData:
    """The form a script posted, if its ``X-CSRF-Token`` header is the session's."""
    check_csrf_header(request)
    return await read_bounded_form(request)


ScriptForm = Annotated[FormData, Depends(_script_form)]


def campaign_path(request: Request, campaign_id: int) -> str:
    # Our own route's path and an id, never one taken from the request: no open redirect.
    return request.url_for("campaign_detail", campaign_id=campaign_id).path


@dataclass(frozen=True, slots=True)
class SettingProblem:
    """A setting every campaign needs that is missing: its name, and why it is needed."""

    setting: str
    reason: str


def sendable_problem(campaigns: Campaigns) -> SettingProblem | None:
    """Why no campaign can be sent (nor previewed: the footer is in every preview) with these
    settings; ``None`` when nothing is missing."""
    try:
        check_sendable(campaigns.settings)
    except SettingsError as exc:
        return SettingProblem(exc.setting, str(exc).removeprefix(f"{exc.setting}: "))
    return None


def missing_campaign(request: Request, campaign_id: int) -> HTMLResponse:
    return render_page(
        request,
        "campaigns/missing.html",
        {"campaign_id": campaign_id},
        status_code=404,
        nav="campaigns",
    )


# -- the list ---------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse, name="campaigns_list")
def campaigns_list(
    request: Request, _admin: CurrentAdmin, engine: ReadEngine, campaigns: ServiceCampaigns
) -> HTMLResponse:
    listed = campaigns.list(limit=200)
    with engine.connect() as connection:
        counts = views.recipient_counts_by_campaign(connection, [c.id for c in listed])
        lists = views.list_choices(connection)
    rows = [_row(campaign, counts[campaign.id]) for campaign in listed]
    context = {"rows": rows, "has_lists": bool(lists)}
    return render_page(request, "campaigns/list.html", context, nav="campaigns")


def _row(campaign: Campaign, counts: Mapping[RecipientStatus, int]) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "audience": _audience_label(campaign.audience),
        "recipients": sum(counts.values()),
        "sent": counts[RecipientStatus.SENT],
        "failed": counts[RecipientStatus.FAILED],
        "remaining": counts[RecipientStatus.PENDING] + counts[RecipientStatus.QUEUED],
    }


def _audience_label(audience: str) -> str:
    if audience.startswith(LIST_PREFIX):
        return audience.removeprefix(LIST_PREFIX)
    return f"{audience} (application)"


# -- the editor -------------------------------------------------------------------------------


@router.get("/campaigns/new", response_class=HTMLResponse, name="campaign_new")
def campaign_new(
    request: Request,
    admin: CurrentAdmin,
    engine: ReadEngine,
    campaigns: ServiceCampaigns,
) -> HTMLResponse:
    with engine.connect() as connection:
        lists = views.list_choices(connection)
    values = dict.fromkeys(FIELDS, "")
    values.update(
        audience=f"{LIST_PREFIX}{lists[0].name}" if lists else "",
        from_email=campaigns.settings.DEFAULT_FROM_EMAIL,
        body_format="html",
    )
    return _editor(request, admin, campaigns, values, campaign=None, preview=None, lists=lists)


@router.post("/campaigns/new", response_model=None)
def campaign_create(
    request: Request, admin: CurrentAdmin, form: CheckedForm, campaigns: ServiceCampaigns
) -> HTMLResponse | RedirectResponse:
    values = form_values(form)
    try:
        campaign_id = campaigns.create(draft_of(values))
    except (MessageError, CampaignError) as exc:
        errors = errors_of(exc, body_format=values["body_format"])
        return _refused(request, admin, campaigns, values, campaign=None, errors=errors)
    response = RedirectResponse(campaign_path(request, campaign_id), status_code=303)
    flash(response, f"Saved the draft “{values['name'].strip()}”.")
    return response


@router.get("/campaigns/{campaign_id}/edit", response_class=HTMLResponse, name="campaign_edit")
def campaign_edit(
    request: Request, campaign_id: CampaignId, admin: CurrentAdmin, campaigns: ServiceCampaigns
) -> Response:
    try:
        campaign = campaigns.get(campaign_id)
    except CampaignError:
        return missing_campaign(request, campaign_id)
    if campaign.status is not CampaignStatus.DRAFT:
        response = RedirectResponse(campaign_path(request, campaign_id), status_code=303)
        flash(response, _fixed(campaign), "error")
        return response
    values = values_of(campaign)
    preview = render_campaign_preview(
        campaigns.outbox, campaigns.templates, values, campaign=campaign
    )
    return _editor(request, admin, campaigns, values, campaign=campaign, preview=preview)


@router.post("/campaigns/{campaign_id}/edit", response_model=None)
def campaign_save(
    request: Request,
    campaign_id: CampaignId,
    admin: CurrentAdmin,
    form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> Response:
    values = form_values(form)
    try:
        campaign = campaigns.get(campaign_id)
    except CampaignError:
        return missing_campaign(request, campaign_id)
    if campaign.status is not CampaignStatus.DRAFT:
        response = RedirectResponse(campaign_path(request, campaign_id), status_code=303)
        flash(response, f"Not saved. {_fixed(campaign)}", "error")
        return response
    try:
        campaigns.update(campaign_id, draft_of(values, stream=campaign.stream))
    except (MessageError, CampaignError) as exc:
        errors = errors_of(exc, body_format=values["body_format"])
        return _refused(request, admin, campaigns, values, campaign=campaign, errors=errors)
    response = RedirectResponse(campaign_path(request, campaign_id), status_code=303)
    flash(response, f"Saved the draft “{values['name'].strip()}”.")
    return response


def _fixed(campaign: Campaign) -> str:
    return (
        f"Campaign {campaign.id} is {campaign.status.value}: its content is fixed. "
        "Duplicate it to write a new one."
    )


@router.post("/campaigns/preview", response_class=HTMLResponse)
def campaign_preview_page(
    request: Request, admin: CurrentAdmin, form: CheckedForm, campaigns: ServiceCampaigns
) -> HTMLResponse:
    """The editor again, with the preview of what was posted (without a script)."""
    values = form_values(form)
    campaign = _edited(campaigns, form)
    preview = render_campaign_preview(
        campaigns.outbox, campaigns.templates, values, campaign=campaign
    )
    return _editor(request, admin, campaigns, values, campaign=campaign, preview=preview)


@router.post("/api/campaigns/preview")
def campaign_preview_api(
    request: Request, admin: CurrentAdmin, form: ScriptForm, campaigns: ServiceCampaigns
) -> JSONResponse:
    """The preview as JSON, for the editor's script. A plain ``def``: the sandbox may run
    for its whole timeout, in a worker thread rather than on the event loop."""
    campaign = _edited(campaigns, form)
    preview = render_campaign_preview(
        campaigns.outbox, campaigns.templates, form_values(form), campaign=campaign
    )
    return JSONResponse(
        {
            "subject": preview.subject,
            "to": preview.to,
            "text": preview.text,
            "html_url": html_url(request, preview, admin),
            "errors": [error.as_json() for error in preview.errors],
        },
        headers={"Cache-Control": "no-store"},
    )


def _edited(campaigns: Campaigns, form: FormData) -> Campaign | None:
    """The stored draft the form edits (its hidden ``campaign_id``), if any."""
    raw = str(form.get("campaign_id") or "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    try:
        return campaigns.get(int(raw))
    except CampaignError:
        return None


@router.get("/campaigns/preview/{token}", name="campaign_preview_html")
def campaign_preview_html(token: str, admin: CurrentAdmin) -> Response:
    """The composed HTML for the preview frame, under the CSP of a message's preview."""
    html = PREVIEWS.get(admin.id, token[:64])
    if html is None:
        return Response(
            "This preview has expired: change the campaign or press Preview again.",
            404,
            dict(PREVIEW_HEADERS),
            "text/plain; charset=utf-8",
        )
    return Response(html, headers=dict(PREVIEW_HEADERS), media_type="text/html; charset=utf-8")


def html_url(request: Request, preview: CampaignPreview, admin: AdminUser) -> str | None:
    """Where the preview frame fetches ``preview``'s HTML from; ``None`` without one."""
    if preview.html is None:
        return None
    token = PREVIEWS.put(admin.id, preview.html)
    return request.url_for("campaign_preview_html", token=token).path


def _refused(
    request: Request,
    admin: AdminUser,
    campaigns: Campaigns,
    values: Mapping[str, str],
    *,
    campaign: Campaign | None,
    errors: Mapping[str, str],
) -> HTMLResponse:
    preview = render_campaign_preview(
        campaigns.outbox, campaigns.templates, values, campaign=campaign
    )
    return _editor(
        request,
        admin,
        campaigns,
        values,
        campaign=campaign,
        preview=preview,
        errors=errors,
        status_code=422,
    )


def _editor(
    request: Request,
    admin: AdminUser,
    campaigns: Campaigns,
    values: Mapping[str, str],
    *,
    campaign: Campaign | None,
    preview: CampaignPreview | None,
    lists: list[views.ListChoice] | None = None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    if lists is None:
        with campaigns.outbox.engine.connect() as connection:
            lists = views.list_choices(connection)
    audiences = [(f"{LIST_PREFIX}{choice.name}", choice) for choice in lists]
    known = {value for value, _ in audiences}
    context = {
        "form": values,
        "campaign": campaign,
        "audiences": audiences,
        # An application's audience (or a list since deleted) stays what the draft says.
        "other_audience": values["audience"] if values["audience"] not in known else None,
        "errors": errors or {},
        "preview": preview,
        "html_url": None if preview is None else html_url(request, preview, admin),
        "labels": FIELD_LABELS,
        "sendable_problem": sendable_problem(campaigns),
    }
    return render_page(
        request, "campaigns/edit.html", context, status_code=status_code, nav="campaigns"
    )
