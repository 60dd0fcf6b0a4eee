"""The campaign page's progress figures (``mailroom.web.admin.campaign_page.ProgressView``):
the percent never rounds up to 100 before every recipient has an outcome, and what remains
counts the audience not yet in the ledger while it is still on its way."""

from __future__ import annotations

from mailroom.campaigns.progress import Progress
from mailroom.outbox.vocabulary import CampaignStatus
from mailroom.web.admin.campaign_page import ProgressView


def counts(*, pending: int = 0, queued: int = 0, sent: int = 0, skipped: int = 0) -> Progress:
    return Progress(pending, queued, sent, failed=0, suppressed=0, skipped=skipped)


def test_the_percent_is_rounded_down() -> None:
    almost = ProgressView(CampaignStatus.SENDING, None, counts(sent=999, queued=1), 1000)
    assert almost.percent == 99
    assert almost.remaining == 1
    done = ProgressView(CampaignStatus.FINISHED, None, counts(sent=1000), 1000)
    assert done.percent == 100
    assert done.remaining == 0
    assert not done.live


def test_the_audience_not_yet_in_the_ledger_remains() -> None:
    fanning = ProgressView(CampaignStatus.SENDING, None, counts(sent=100, pending=100), 1000)
    assert fanning.remaining == 900
    assert fanning.percent == 10
    assert fanning.live
    draft = ProgressView(CampaignStatus.DRAFT, None, counts(), 1000)
    assert (draft.percent, draft.remaining) == (0, 1000)


def test_a_cancelled_campaign_has_nothing_remaining() -> None:
    cancelled = ProgressView(CampaignStatus.CANCELLED, None, counts(sent=10, skipped=5), 1000)
    assert cancelled.remaining == 0
    assert cancelled.as_json()["remaining"] == 0


def test_an_empty_audience() -> None:
    assert ProgressView(CampaignStatus.FINISHED, None, counts(), 0).percent == 100
    assert ProgressView(CampaignStatus.SENDING, None, counts(), 0).percent == 0
