"""What the campaign page's buttons do, each a POST with the CSRF token that answers with a
redirect back to a page and a notice: send now or schedule, a test send to given addresses,
pause, resume, cancel, retry the failed recipients, duplicate, delete a draft.

Each calls the library the CLI calls (:class:`~mailroom.campaigns.store.Campaigns`,
:mod:`mailroom.campaigns.control`, :func:`mailroom.campaigns.previews.send_test`), and each
refusal the library makes (a state that does not allow it, a missing setting named) is the
notice, never an error page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from mailroom.campaigns import control, previews
from mailroom.campaigns.store import Campaign
from mailroom.errors import CampaignError, MessageError, SettingsError
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.campaigns import CampaignId, ServiceCampaigns, campaign_path
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import flash, format_datetime

__all__ = ["router"]

router = APIRouter()

_SEPARATORS = re.compile(r"[\s,;]+")
_SEND_AT = "%Y-%m-%dT%H:%M"  # what <input type="datetime-local"> posts (minutes)
_Refusal = (CampaignError, MessageError, SettingsError)


def _back(
    request: Request, campaign_id: int, notice: str, kind: str = "success"
) -> RedirectResponse:
    response = RedirectResponse(campaign_path(request, campaign_id), status_code=303)
    flash(response, notice, kind)
    return response


def _refused(request: Request, campaign_id: int, exc: Exception) -> RedirectResponse:
    text = str(exc)
    if isinstance(exc, SettingsError):
        text = f"Not sent: set {exc.setting} first. {text}"
    return _back(request, campaign_id, text, "error")


@router.post("/campaigns/{campaign_id}/send")
def campaign_send(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    """Send now, or at ``send_at`` (``YYYY-MM-DDTHH:MM``, UTC) when the form gives one."""
    raw = str(form.get("send_at") or "").strip()
    when = None
    if raw:
        try:
            when = datetime.strptime(raw, _SEND_AT).replace(tzinfo=UTC)
        except ValueError:
            return _back(request, campaign_id, "Write the time as YYYY-MM-DD HH:MM (UTC).", "error")
        if when.timestamp() <= datetime.now(UTC).timestamp():
            return _back(
                request,
                campaign_id,
                f"{raw.replace('T', ' ')} UTC has passed: choose a later time, or send it now.",
                "error",
            )
    try:
        campaign = campaigns.start(campaign_id, send_at=when)
    except _Refusal as exc:
        return _refused(request, campaign_id, exc)
    if campaign.status is CampaignStatus.SCHEDULED:
        notice = f"Scheduled: it starts sending at {format_datetime(campaign.send_at)}."
    else:
        notice = "Sending: the progress below follows it."
    return _back(request, campaign_id, notice)


@router.post("/campaigns/{campaign_id}/test")
def campaign_test(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    """The campaign to the addresses given (its subject marked ``[Test]``), with the merge
    fields of the contact named (else the list's first)."""
    addresses = [a for a in _SEPARATORS.split(str(form.get("addresses") or "")) if a]
    as_contact = str(form.get("as_contact") or "").strip() or None
    try:
        campaign = campaigns.get(campaign_id)
        ids = previews.send_test(
            campaigns.outbox,
            campaign,
            addresses,
            as_contact=as_contact,
            templates=campaigns.templates,
        )
    except _Refusal as exc:
        if isinstance(exc, SettingsError):
            text = f"No test sent: set {exc.setting} first. {exc}"
        else:
            text = f"No test sent: {str(exc).removeprefix('to: ')}"
        return _back(request, campaign_id, text, "error")
    numbers = ", ".join(f"#{pk}" for pk in ids)
    return _back(
        request,
        campaign_id,
        f"Test sent to {', '.join(addresses)} (subject marked [Test]; messages {numbers}).",
    )


def _control(
    request: Request,
    campaign_id: int,
    action: Callable[[], control.ControlOutcome],
    said: Callable[[control.ControlOutcome], str],
) -> RedirectResponse:
    try:
        outcome = action()
    except CampaignError as exc:
        return _back(request, campaign_id, str(exc), "error")
    return _back(request, campaign_id, said(outcome))


@router.post("/campaigns/{campaign_id}/pause")
def campaign_pause(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    engine = campaigns.outbox.engine
    return _control(
        request,
        campaign_id,
        lambda: control.pause(engine, campaign_id),
        lambda o: (
            f"Paused: {o.withdrawn} messages not yet sent were taken back out of the "
            "queue; resuming sends them."
        ),
    )


@router.post("/campaigns/{campaign_id}/resume")
def campaign_resume(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    engine = campaigns.outbox.engine
    return _control(
        request,
        campaign_id,
        lambda: control.resume(engine, campaign_id),
        lambda _o: "Resumed: sending goes on from where it stopped.",
    )


@router.post("/campaigns/{campaign_id}/cancel")
def campaign_cancel(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    engine = campaigns.outbox.engine
    return _control(
        request,
        campaign_id,
        lambda: control.cancel(engine, campaign_id),
        lambda o: (
            f"Cancelled: nobody not yet sent it will be ({o.withdrawn} messages taken "
            "back out of the queue)."
        ),
    )


@router.post("/campaigns/{campaign_id}/retry-failed")
def campaign_retry_failed(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    engine = campaigns.outbox.engine
    return _control(
        request,
        campaign_id,
        lambda: control.retry_failed(engine, campaign_id),
        lambda o: f"Queued again: the {o.withdrawn} failed recipients' messages.",
    )


@router.post("/campaigns/{campaign_id}/duplicate")
def campaign_duplicate(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    try:
        copy = campaigns.duplicate(campaign_id)
    except CampaignError as exc:
        return _back(request, campaign_id, str(exc), "error")
    response = RedirectResponse(
        request.url_for("campaign_edit", campaign_id=copy).path, status_code=303
    )
    flash(response, f"A new draft with the content of campaign {campaign_id}: edit it here.")
    return response


@router.post("/campaigns/{campaign_id}/delete")
def campaign_delete(
    request: Request,
    campaign_id: CampaignId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    campaigns: ServiceCampaigns,
) -> RedirectResponse:
    try:
        campaign: Campaign = campaigns.get(campaign_id)
        campaigns.delete(campaign_id)
    except CampaignError as exc:
        return _back(request, campaign_id, str(exc), "error")
    response = RedirectResponse(request.url_for("campaigns_list").path, status_code=303)
    flash(response, f"Deleted the draft “{campaign.name}”.")
    return response
