"""``/api/v1/campaigns``: write a campaign, test it, send or schedule it, pause, resume,
cancel, retry its failed recipients, and read its results (admin keys only).

Each route validates its input and calls what ``mailroom campaign`` calls
(:mod:`mailroom.campaigns.store`, :mod:`~mailroom.campaigns.control`,
:mod:`~mailroom.campaigns.previews`, :mod:`~mailroom.campaigns.stats`). Their errors become
answers in one place (:func:`_answered`): no such campaign 404; an action the campaign's state
does not allow 409 with the store's words; a setting sending needs and does not have
(``ORGANIZATION_POSTAL_ADDRESS``, ``PUBLIC_BASE_URL``, ``SECRET_KEY``) 409 ``not_configured``
naming it, since the request is right and the service is not; a bad field 422 naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from mailroom.campaigns import control, previews
from mailroom.campaigns.stats import campaign_stats, timeline
from mailroom.campaigns.store import CampaignDraft, Campaigns, read_campaign, read_campaigns
from mailroom.errors import (
    CampaignError,
    CampaignNotFoundError,
    MessageError,
    SettingsError,
    TemplateError,
)
from mailroom.web.api.campaign_models import (
    CampaignChanges,
    CampaignIn,
    CampaignList,
    CampaignOut,
    CampaignStats,
    ControlResult,
    DuplicateIn,
    SendIn,
    TestIn,
    TestQueued,
    TimePoint,
    full,
    summary,
)
from mailroom.web.api.message_models import epoch_time
from mailroom.web.api.messages import ERROR_RESPONSES
from mailroom.web.auth import AdminKey
from mailroom.web.dependencies import DatabaseEngine, ReadEngine, ServiceOutbox
from mailroom.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["campaigns"])

CampaignId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The campaign's id.")]
_BUCKET_MIN = 60
_BUCKET_MAX = 366 * 86_400
# The template's parts as the store names them, and the request fields they come from.
_TEMPLATE_PARTS = {"subject": "subject", "html": "body"}


@contextmanager
def _answered(*, fields_in_request: bool = True) -> Iterator[None]:
    """The library's errors as answers. ``fields_in_request=False``: the request has none of
    the campaign's fields (sending, a control), so a field at fault (its list is gone) is the
    campaign's state, a 409, not the request's, a 422."""
    try:
        yield
    except CampaignNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except CampaignError as exc:
        if exc.field is not None and fields_in_request:
            raise ApiError(422, "invalid", f"{exc.field}: {exc}", exc.field) from None
        raise ApiError(409, "conflict", str(exc)) from None
    except SettingsError as exc:
        raise ApiError(409, "not_configured", str(exc), extra={"setting": exc.setting}) from None
    except TemplateError as exc:
        # "template campaign: html: syntax error on line 3: ...": the part names the field.
        detail = str(exc).removeprefix(f"{exc.field}: ")
        part, _, rest = detail.partition(": ")
        field = _TEMPLATE_PARTS.get(part, "body")
        raise ApiError(422, "invalid_template", f"{field}: {rest or detail}", field) from None
    except MessageError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ")
        raise ApiError(422, "invalid", f"{exc.field}: {message}", exc.field) from None


@router.post(
    "/campaigns",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignOut,
    responses=ERROR_RESPONSES,
    summary="Write a campaign (a draft)",
)
def create_campaign(body: CampaignIn, _caller: AdminKey, outbox: ServiceOutbox) -> CampaignOut:
    """422 naming the field for a bad address, an unknown list or a template syntax error
    (with its line)."""
    campaigns = Campaigns(outbox)
    with _answered():
        campaign_id = campaigns.create(CampaignDraft(**body.model_dump()))
        return full(campaigns.get(campaign_id))


@router.get(
    "/campaigns",
    response_model=CampaignList,
    responses=ERROR_RESPONSES,
    summary="List the newest campaigns",
)
def list_campaigns(
    _caller: AdminKey,
    reader: ReadEngine,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 100,
) -> CampaignList:
    with reader.connect() as connection:
        found = read_campaigns(connection, limit=limit)
    return CampaignList(items=[summary(campaign) for campaign in found])


@router.get(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses=ERROR_RESPONSES,
    summary="Read a campaign",
)
def get_campaign(campaign_id: CampaignId, _caller: AdminKey, reader: ReadEngine) -> CampaignOut:
    with _answered(), reader.connect() as connection:
        return full(read_campaign(connection, campaign_id))


@router.patch(
    "/campaigns/{campaign_id}",
    response_model=CampaignOut,
    responses=ERROR_RESPONSES,
    summary="Edit a draft",
)
def edit_campaign(
    campaign_id: CampaignId, body: CampaignChanges, _caller: AdminKey, outbox: ServiceOutbox
) -> CampaignOut:
    """The fields given replace the draft's. 409 once it is scheduled or sending: its
    content is fixed then (duplicate it to write a new one)."""
    campaigns = Campaigns(outbox)
    with _answered():
        draft = replace(campaigns.get(campaign_id).draft(), **body.model_dump(exclude_unset=True))
        return full(campaigns.update(campaign_id, draft))


@router.delete(
    "/campaigns/{campaign_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=ERROR_RESPONSES,
    summary="Delete a draft",
)
def delete_campaign(campaign_id: CampaignId, _caller: AdminKey, outbox: ServiceOutbox) -> Response:
    """409 for a campaign that is not a draft: cancel it instead."""
    with _answered():
        Campaigns(outbox).delete(campaign_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/campaigns/{campaign_id}/duplicate",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignOut,
    responses=ERROR_RESPONSES,
    summary="Copy a campaign (in any state) into a new draft",
)
def duplicate_campaign(
    campaign_id: CampaignId,
    _caller: AdminKey,
    outbox: ServiceOutbox,
    body: DuplicateIn | None = None,
) -> CampaignOut:
    campaigns = Campaigns(outbox)
    with _answered():
        copy_id = campaigns.duplicate(campaign_id, name=body.name if body else None)
        return full(campaigns.get(copy_id))


@router.post(
    "/campaigns/{campaign_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TestQueued,
    responses=ERROR_RESPONSES,
    summary="Send a test of the campaign to given addresses",
)
def send_campaign_test(
    campaign_id: CampaignId, body: TestIn, _caller: AdminKey, outbox: ServiceOutbox
) -> TestQueued:
    """The campaign as a contact of its list gets it (``as_contact``, else the first), its
    subject marked ``[Test]``; not in the ledger, so no contact counts as sent it."""
    with _answered():
        campaign = Campaigns(outbox).get(campaign_id)
        ids = previews.send_test(outbox, campaign, body.to, as_contact=body.as_contact)
    return TestQueued(outbox_ids=ids)


@router.post(
    "/campaigns/{campaign_id}/send",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CampaignOut,
    responses=ERROR_RESPONSES,
    summary="Send a campaign now, or schedule it",
)
def send_campaign(
    campaign_id: CampaignId,
    _caller: AdminKey,
    outbox: ServiceOutbox,
    body: SendIn | None = None,
) -> CampaignOut:
    """A draft or a scheduled campaign starts (``sending``), or is scheduled for a
    ``send_at`` to come; the workers (``serve``'s own among them) send it. 409 in any other
    state, and 409 ``not_configured`` naming the setting a campaign needs and the service
    lacks."""
    with _answered(fields_in_request=False):
        return full(Campaigns(outbox).start(campaign_id, send_at=body.send_at if body else None))


def _controlled(outcome: control.ControlOutcome, *, requeued: bool = False) -> ControlResult:
    return ControlResult(
        campaign=summary(outcome.campaign),
        withdrawn=0 if requeued else outcome.withdrawn,
        requeued=outcome.withdrawn if requeued else 0,
    )


@router.post(
    "/campaigns/{campaign_id}/pause",
    response_model=ControlResult,
    responses=ERROR_RESPONSES,
    summary="Pause a sending or scheduled campaign",
)
def pause_campaign(
    campaign_id: CampaignId, _caller: AdminKey, engine: DatabaseEngine
) -> ControlResult:
    """Its messages still waiting in the outbox are taken back (``withdrawn``) until a
    resume; one a worker already holds is sent."""
    with _answered(fields_in_request=False):
        return _controlled(control.pause(engine, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/resume",
    response_model=ControlResult,
    responses=ERROR_RESPONSES,
    summary="Go on sending a paused campaign",
)
def resume_campaign(
    campaign_id: CampaignId, _caller: AdminKey, engine: DatabaseEngine
) -> ControlResult:
    with _answered(fields_in_request=False):
        return _controlled(control.resume(engine, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/cancel",
    response_model=ControlResult,
    responses=ERROR_RESPONSES,
    summary="Cancel a campaign for good",
)
def cancel_campaign(
    campaign_id: CampaignId, _caller: AdminKey, engine: DatabaseEngine
) -> ControlResult:
    """Nobody not yet sent it ever will be; its waiting messages are taken back."""
    with _answered(fields_in_request=False):
        return _controlled(control.cancel(engine, campaign_id))


@router.post(
    "/campaigns/{campaign_id}/retry-failed",
    response_model=ControlResult,
    responses=ERROR_RESPONSES,
    summary="Queue the failed recipients' messages again, and only theirs",
)
def retry_failed_campaign(
    campaign_id: CampaignId, _caller: AdminKey, engine: DatabaseEngine
) -> ControlResult:
    with _answered(fields_in_request=False):
        return _controlled(control.retry_failed(engine, campaign_id), requeued=True)


@router.get(
    "/campaigns/{campaign_id}/stats",
    response_model=CampaignStats,
    responses=ERROR_RESPONSES,
    summary="A campaign's results: recipients, opens, clicks per link, unsubscribes",
)
def campaign_results(
    campaign_id: CampaignId,
    _caller: AdminKey,
    reader: ReadEngine,
    timeline_seconds: Annotated[
        int | None,
        Query(
            alias="timeline",
            ge=_BUCKET_MIN,
            le=_BUCKET_MAX,
            description="Also sent, failed, opened and clicked per bucket of this many seconds.",
        ),
    ] = None,
) -> CampaignStats:
    """Derived from the ledger, the messages and their events each time: figures that cannot
    drift from what happened."""
    with _answered(), reader.connect() as connection:
        campaign = read_campaign(connection, campaign_id)
        results = campaign_stats(connection, campaign_id)
        points = (
            None
            if timeline_seconds is None
            else timeline(connection, campaign_id, timeline_seconds)
        )
    return CampaignStats.model_validate(
        {
            "id": campaign.id,
            "status": campaign.status,
            "paused_reason": campaign.paused_reason,
            "fanout_done": campaign.fanout_done,
            **results.as_dict(),
            "timeline": None
            if points is None
            else [
                TimePoint(
                    at=epoch_time(point.at),
                    sent=point.sent,
                    failed=point.failed,
                    opened=point.opened,
                    clicked=point.clicked,
                )
                for point in points
            ],
        }
    )
