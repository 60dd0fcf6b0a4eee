"""Campaigns as Celery tasks (``CAMPAIGN_FANOUT = "celery"``): Beat's tick fans audiences out
and dispatches one batch task per batch the stream's window has room for. Registered by the
import of :mod:`mailroom.integrations.celery` (the module a Celery app includes)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypedDict

from celery import shared_task

from mailroom.campaigns.runner import CampaignRunner
from mailroom.config import Settings, load_settings
from mailroom.outbox.store import Outbox

__all__ = [
    "CAMPAIGNS_TASK",
    "CAMPAIGN_BATCH_TASK",
    "CampaignBatchResult",
    "CampaignsResult",
    "campaign_batch",
    "campaign_beat_schedule",
    "campaigns",
    "read_settings_with",
]

# A batch composes EMAILS_PER_TASK messages, a tick fans a page out and dispatches: seconds.
# The backstops are the drain's (mailroom.integrations.celery).
SOFT_TIME_LIMIT = 120
TIME_LIMIT = 150

_settings_source: Callable[[], Settings] = load_settings


def read_settings_with(source: Callable[[], Settings]) -> None:
    """Where the tasks take their settings from: :mod:`mailroom.integrations.celery`'s own
    reading (handed settings, Django's, or Mailroom's), set by that module when imported."""
    global _settings_source  # noqa: PLW0603 - one source per process
    _settings_source = source


def _worker_settings() -> Settings:
    return _settings_source()


CAMPAIGNS_TASK = "mailroom.campaigns"
"""Beat's tick for the campaigns: start the scheduled ones that are due, fan audiences out
into their ledgers, and send one :data:`CAMPAIGN_BATCH_TASK` per batch the stream's window
has room for."""

CAMPAIGN_BATCH_TASK = "mailroom.campaign_batch"
"""One batch of ``EMAILS_PER_TASK`` pending recipients of a campaign composed and queued.
Acknowledged late and given back when its worker dies (``acks_late``,
``reject_on_worker_lost``): the broker delivers it again, and the ledger, not the task, says
who is still pending, so a batch done twice, or cut off half-way (its transaction rolled
back), sends nobody the campaign twice."""


class CampaignsResult(TypedDict):
    dispatched: int
    fanned_out: int
    finished: list[int]


class CampaignBatchResult(TypedDict):
    campaign: int
    queued: int
    suppressed: int
    skipped: int
    taken_by_others: int
    stopped: bool


def _campaign_outbox(settings: Settings) -> Outbox:
    # An engine per task, disposed after it: a prefork child's connections are its own, and
    # a task's few statements cost less than a leaked pool in a long-lived child.
    return Outbox(settings)


@shared_task(
    name=CAMPAIGNS_TASK, soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT, ignore_result=False
)
def campaigns() -> CampaignsResult:
    """Start, fan out and dispatch every running campaign's batches (see
    :data:`CAMPAIGNS_TASK`)."""
    outbox = _campaign_outbox(_worker_settings())
    try:
        step = CampaignRunner(outbox, dispatch=_dispatch_batch).step()
    finally:
        outbox.dispose()
    return CampaignsResult(
        dispatched=step.dispatched, fanned_out=step.fanned_out, finished=step.finished
    )


@shared_task(
    name=CAMPAIGN_BATCH_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=SOFT_TIME_LIMIT,
    time_limit=TIME_LIMIT,
)
def campaign_batch(campaign_id: int) -> CampaignBatchResult:
    """One batch of the campaign (see :data:`CAMPAIGN_BATCH_TASK`)."""
    outbox = _campaign_outbox(_worker_settings())
    try:
        outcome = CampaignRunner(outbox).run_batch(campaign_id)
    finally:
        outbox.dispose()
    return CampaignBatchResult(
        campaign=campaign_id,
        queued=outcome.queued,
        suppressed=outcome.suppressed,
        skipped=outcome.skipped,
        taken_by_others=outcome.taken_by_others,
        stopped=outcome.stopped,
    )


def _dispatch_batch(campaign_id: int) -> None:
    # To the queue tasks go to by default (task_default_queue, or task_routes naming
    # CAMPAIGN_BATCH_TASK): the batches may run on other workers than the tick.
    campaign_batch.delay(campaign_id)


def campaign_beat_schedule(
    every: float = 5.0, *, entry: str = "mailroom-campaigns", queue: str | None = None
) -> dict[str, dict[str, Any]]:
    """A Beat schedule with one entry: :data:`CAMPAIGNS_TASK` every ``every`` seconds (with
    ``CAMPAIGN_FANOUT = "celery"``; merge it with :func:`beat_schedule`'s)."""
    if not (math.isfinite(every) and every > 0):
        raise ValueError(f"every must be a positive number of seconds, not {every}")
    options: dict[str, Any] = {"expires": every}
    if queue is not None:
        options["queue"] = queue
    return {entry: {"task": CAMPAIGNS_TASK, "schedule": every, "options": options}}
