"""A campaign's page: what it is and where it is (a progress bar and the counts, which
``campaign_progress.js`` refreshes every two seconds from ``/admin/api/campaigns/{id}/progress``
while it is scheduled or sending), what can be done to it now (:mod:`.campaign_actions`),
its preview as any contact of its list, and, once it has started, its results: sent, failed,
bounced, opens (privacy-proxy opens apart), clicks per link, unsubscribes, and a chart over
time.

Every figure is derived from the ledger, the messages and the events when the page is asked
for (:mod:`mailroom.campaigns.progress`, :mod:`mailroom.campaigns.stats`): nothing is counted
beside them, so the page cannot disagree with what happened.

Clicks per link name the link by its URL, read from the ``tracked_links`` of the campaign's
first message: every recipient's message is made from the same body, so link *n* is the same
link in each (a URL made from a merge field differs per recipient; the first one's shows its
shape).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Connection

from mailroom.campaigns.composer import campaign_scope
from mailroom.campaigns.progress import Progress, progress
from mailroom.campaigns.stats import CampaignStats, campaign_stats, timeline
from mailroom.campaigns.store import Campaign
from mailroom.compose.tracking import tracks
from mailroom.consent.scopes import SCOPE_ALL
from mailroom.errors import CampaignError
from mailroom.outbox import campaign_view_queries as views
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.campaign_chart import CampaignChart, bucket_for, campaign_chart
from mailroom.web.admin.campaign_forms import FIELD_LABELS, render_campaign_preview, values_of
from mailroom.web.admin.campaigns import (
    CampaignId,
    ServiceCampaigns,
    html_url,
    missing_campaign,
    sendable_problem,
)
from mailroom.web.admin.rendering import render_page
from mailroom.web.dependencies import ReadEngine
from mailroom.web.errors import error_response

__all__ = ["ProgressView", "progress_view", "router"]

router = APIRouter()

LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)
"""While a campaign is in one of these, its page follows its progress."""
_REACHING = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
"""Still on its way to its whole audience (a cancelled one never will be)."""


@dataclass(frozen=True, slots=True)
class ProgressView:
    """Where a campaign is: its ledger's counts against the audience it will reach."""

    status: CampaignStatus
    paused_reason: str | None
    counts: Progress
    expected: int
    """The audience as far as it is known: the ledger once the fan-out is done, else the
    list's size (a draft's too: who it would go to)."""

    @property
    def remaining(self) -> int:
        """Recipients without an outcome yet, those not in the ledger yet included (a
        draft's whole audience)."""
        if self.status not in (CampaignStatus.DRAFT, *_REACHING):
            return self.counts.remaining
        return max(self.expected - self.counts.settled, self.counts.remaining)

    @property
    def percent(self) -> int:
        """Recipients with an outcome, in whole percent, rounded down: 100 only when every
        one has it."""
        if self.expected <= 0:
            return 100 if self.status is CampaignStatus.FINISHED else 0
        return min(100, self.counts.settled * 100 // self.expected)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "paused_reason": self.paused_reason,
            "live": self.live,
            "expected": self.expected,
            "settled": self.counts.settled,
            "remaining": self.remaining,
            "percent": self.percent,
            "counts": self.counts.as_dict(),
        }


def progress_view(connection: Connection, campaign: Campaign) -> ProgressView:
    counts = progress(connection, campaign.id)
    expected = counts.total
    still_coming = campaign.status in (CampaignStatus.DRAFT, *_REACHING)
    if still_coming and not campaign.fanout_done and campaign.list_name is not None:
        expected = max(expected, views.list_size(connection, campaign.list_name) or 0)
    return ProgressView(campaign.status, campaign.paused_reason, counts, expected)


@router.get("/api/campaigns/{campaign_id}/progress")
def campaign_progress(
    campaign_id: CampaignId, _admin: CurrentAdmin, engine: ReadEngine, campaigns: ServiceCampaigns
) -> Response:
    """The progress the campaign page shows, for its script to follow."""
    try:
        campaign = campaigns.get(campaign_id)
    except CampaignError:
        return _json_missing(campaign_id)
    with engine.connect() as connection:
        view = progress_view(connection, campaign)
    return JSONResponse(view.as_json(), headers={"Cache-Control": "no-store"})


def _json_missing(campaign_id: int) -> Response:
    return error_response(
        404,
        "not_found",
        f"there is no campaign {campaign_id}",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, name="campaign_detail")
def campaign_detail(
    request: Request,
    campaign_id: CampaignId,
    *,
    admin: CurrentAdmin,
    engine: ReadEngine,
    campaigns: ServiceCampaigns,
    as_contact: Annotated[str, Query(max_length=320)] = "",
) -> HTMLResponse:
    try:
        campaign = campaigns.get(campaign_id)
    except CampaignError:
        return missing_campaign(request, campaign_id)
    settings = campaigns.settings
    started = campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
    with engine.connect() as connection:
        view = progress_view(connection, campaign)
        stats = campaign_stats(connection, campaign_id) if started else None
        unsubscribed = _unsubscribed(connection, campaign) if started else 0
        links = _links(connection, campaign_id, stats)
        chart = _chart(connection, campaign_id) if started else None
    preview = render_campaign_preview(
        campaigns.outbox,
        campaigns.templates,
        values_of(campaign, as_contact=as_contact),
        campaign=campaign,
    )
    opens, clicks = tracks(settings, campaign.stream)
    context = {
        "campaign": campaign,
        "progress": view,
        "stats": stats,
        "unsubscribed": unsubscribed,
        "links": links,
        "chart": chart,
        "preview": preview,
        "html_url": html_url(request, preview, admin),
        "as_contact": as_contact,
        "labels": FIELD_LABELS,
        "sendable_problem": sendable_problem(campaigns),
        "tracks_opens": opens,
        "tracks_clicks": clicks,
        "can": _allowed(campaign, view),
        "default_send_at": _in_an_hour(),
    }
    return render_page(request, "campaigns/detail.html", context, nav="campaigns")


@dataclass(frozen=True, slots=True)
class LinkRow:
    index: int
    url: str | None
    """``None`` when the campaign's first message names no such link."""
    total: int
    unique: int
    scanner: int


def _links(connection: Connection, campaign_id: int, stats: CampaignStats | None) -> list[LinkRow]:
    if stats is None or not stats.links:
        return []
    urls = views.first_tracked_links(connection, campaign_id) or []
    return [
        LinkRow(
            link.link_index,
            urls[link.link_index] if 0 <= link.link_index < len(urls) else None,
            link.total,
            link.unique,
            link.scanner,
        )
        for link in stats.links
    ]


def _unsubscribed(connection: Connection, campaign: Campaign) -> int:
    """Its recipients who unsubscribed from its list (or from everything) since it started."""
    scopes = (campaign_scope(campaign.audience), SCOPE_ALL)
    since = campaign.started_at or campaign.created_at
    return views.unsubscribed_since(connection, campaign.id, scopes, since)


def _chart(connection: Connection, campaign_id: int) -> CampaignChart | None:
    span = views.event_span(connection, campaign_id)
    if span is None:
        return None
    bucket = bucket_for(span[1] - span[0])
    return campaign_chart(timeline(connection, campaign_id, bucket), bucket)


def _allowed(campaign: Campaign, view: ProgressView) -> dict[str, bool]:
    """What the page offers for the campaign as it is (the library refuses the rest)."""
    status = campaign.status
    return {
        "edit": status is CampaignStatus.DRAFT,
        "delete": status is CampaignStatus.DRAFT,
        "start": status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
        "pause": status in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED),
        "resume": status is CampaignStatus.PAUSED,
        "cancel": status in _REACHING,
        "retry_failed": view.counts.failed > 0
        and status in (CampaignStatus.SENDING, CampaignStatus.FINISHED, CampaignStatus.PAUSED),
    }


def _in_an_hour() -> str:
    """The schedule field's first value: the next whole hour after the next (UTC)."""
    moment = datetime.fromtimestamp((time.time() // 3600 + 2) * 3600, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M")
