"""The campaigns' side of a worker: each :meth:`CampaignRunner.step` does a bounded piece of
every running campaign's work, and :class:`CampaignThread` takes steps in a thread of its own
beside the worker's sending.

For each campaign due: a scheduled one whose time has come starts; its audience goes into the
ledger a page at a time while the pending rows run low; batches of ``EMAILS_PER_TASK`` are
composed and queued while the stream has fewer than ``CAMPAIGN_QUEUE_AHEAD`` messages waiting
(so a million recipients wait in the ledger, not the outbox: a pause takes back a few
thousand, and the stream's throttles pace the rest); its recent failure rate is judged; and
once nobody is pending and no message is waiting, it is finished.

Every step is safe to run in several processes at once (the fan-out and the batches decide
who does what in their transactions), so workers on PostgreSQL share the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from mailroom.campaigns import batches, control, fanout
from mailroom.campaigns.composer import CampaignComposer
from mailroom.campaigns.store import Campaign
from mailroom.compose.templates import TemplateLibrary
from mailroom.config import Settings
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.errors import CampaignError, CampaignNotFoundError, MailroomError
from mailroom.outbox import campaign_queries as q
from mailroom.outbox import ledger_state_queries as ledger_state
from mailroom.outbox import stream_queries
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus, RecipientStatus, Status

__all__ = ["CampaignRunner", "CampaignThread", "RunnerStep", "worker_companions"]

logger = logging.getLogger(__name__)

_IDLE_SLEEP = 1.0  # seconds between steps when there was nothing to do
_DUE_NOW = (Status.QUEUED, Status.SENDING)
_BLOCKED_SLEEP = 0.05  # ... and when a campaign waited for its stream's window to drain


@dataclass
class RunnerStep:
    """What one step did."""

    queued: int = 0
    settled: int = 0
    """Suppressed or skipped at composition."""
    fanned_out: int = 0
    dispatched: int = 0
    """Batches handed to ``dispatch`` (Celery tasks)."""
    campaigns: int = 0
    """Campaigns that had work."""
    more: bool = False
    """Work is left that the next step can do now (not waiting for the window)."""
    blocked: bool = False
    """A campaign has pending recipients and waits for its stream's window to drain."""
    finished: list[int] = field(default_factory=list)


class CampaignRunner:
    """Takes steps for every campaign of ``outbox``'s database."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        max_batches: int = 20,
        dispatch: Callable[[int], None] | None = None,
    ) -> None:
        """``dispatch``: instead of queueing batches itself, hand each one to this (Celery's
        ``mailroom.campaign_batch`` task, given the campaign's id), as many as the stream's
        window has room for."""
        self.outbox = outbox
        self.settings = outbox.settings
        self.max_batches = max_batches
        self.dispatch = dispatch
        self.templates = TemplateLibrary(
            render_timeout=self.settings.TEMPLATE_RENDER_TIMEOUT,
            max_output_chars=self.settings.TEMPLATE_MAX_OUTPUT_CHARS,
        )
        self._composers: dict[int, CampaignComposer] = {}

    def step(self) -> RunnerStep:
        """One bounded piece of work for each campaign due."""
        self.outbox.ensure_schema()
        engine = self.outbox.engine
        now = time.time()
        with engine.connect() as connection:
            due = q.campaigns_to_run(connection, now)
        done = RunnerStep()
        for row in due:
            try:
                self._step_one(int(row.id), CampaignStatus(row.status), row.stream, done)
            except MailroomError as exc:
                # One campaign's trouble (a setting missing, its audience's pages out of
                # order) must not stop the others: said, and tried again at the next step.
                logger.warning("campaign %d: %s", row.id, exc)
            except Exception:
                # Nor an application audience's own error (its database away, a bad row).
                logger.exception("campaign %d: its step failed", row.id)
        self._take_back_stopped()
        return done

    def _take_back_stopped(self) -> None:
        """A message a worker held when its campaign was paused or cancelled comes back to
        wait if it is deferred or its lease runs out: taken back again, as the pause or cancel
        took back the others."""
        engine = self.outbox.engine
        with engine.connect() as connection:
            stopped = ledger_state.stopped_with_queued(connection)
        for campaign_id, status in stopped:
            cancelled = status == CampaignStatus.CANCELLED.value
            with engine.begin() as connection:
                row = q.lock_campaign(connection, campaign_id)
                if row is None or row.status != status:
                    continue
                ledger_state.withdraw_waiting(
                    connection,
                    campaign_id,
                    to=RecipientStatus.SKIPPED if cancelled else RecipientStatus.PENDING,
                    reason="cancelled" if cancelled else None,
                    now=time.time(),
                )

    def _step_one(
        self, campaign_id: int, status: CampaignStatus, stream: str, done: RunnerStep
    ) -> None:
        engine = self.outbox.engine
        if status is CampaignStatus.SCHEDULED:
            self._start_scheduled(campaign_id)
        campaign = self._campaign(campaign_id)
        if campaign.status is not CampaignStatus.SENDING:
            return
        done.campaigns += 1
        per_task = self.settings.EMAILS_PER_TASK
        queued_here = 0
        for _ in range(self.max_batches):
            window = self.settings.CAMPAIGN_QUEUE_AHEAD
            with engine.connect() as connection:
                waiting = ledger_state.in_flight_on_stream(connection, stream, window)
                pending = ledger_state.has_pending(connection, campaign_id)
            if not pending:
                if campaign.fanout_done:
                    break
                step = fanout.fan_out_page(engine, campaign_id)
                done.fanned_out += step.added
                campaign = self._campaign(campaign_id)
                if step.added == 0:
                    break
                continue
            if waiting + per_task > window:
                # The stream has enough waiting: the rest stays in the ledger. Blocked (to
                # look again soon) while some of it is due now; a window of deferred
                # messages waits for their retries, as a --once run does not.
                with engine.connect() as connection:
                    done.blocked = self._due_now_on(connection, stream)
                break
            if self.dispatch is not None:
                room = min((window - waiting) // per_task, self.max_batches)
                with engine.connect() as connection:
                    pending_rows = ledger_state.count_pending(
                        connection, campaign_id, room * per_task
                    )
                wanted = min(room, -(-pending_rows // per_task))
                for _ in range(wanted):
                    self.dispatch(campaign_id)
                done.dispatched += wanted
                break
            outcome = batches.queue_batch(self.outbox, self._composer(campaign), size=per_task)
            if outcome.stopped:
                return
            queued_here += outcome.queued
            done.queued += outcome.queued
            done.settled += outcome.suppressed + outcome.skipped
        else:
            done.more = True
        self._judge_failures(campaign_id)
        if queued_here == 0 and campaign.fanout_done:
            self._finish_if_settled(campaign_id, done)

    def run_batch(self, campaign_id: int) -> batches.BatchOutcome:
        """One batch of the campaign, if it is sending and its stream's window has room (what
        a dispatched batch task does; it may run long after it was dispatched)."""
        self.outbox.ensure_schema()
        campaign = self._campaign(campaign_id)
        if campaign.status is not CampaignStatus.SENDING:
            return batches.BatchOutcome(stopped=True)
        per_task = self.settings.EMAILS_PER_TASK
        window = self.settings.CAMPAIGN_QUEUE_AHEAD
        with self.outbox.engine.connect() as connection:
            waiting = ledger_state.in_flight_on_stream(connection, campaign.stream, window)
        if waiting + per_task > window:
            return batches.BatchOutcome()
        return batches.queue_batch(self.outbox, self._composer(campaign), size=per_task)

    def _due_now_on(self, connection: Connection, stream: str) -> bool:
        """Whether the stream has messages a worker may claim now: waiting for them is worth
        a short sleep (not while the stream is paused: those wait for the pause to end)."""
        if stream_queries.paused_until(connection, stream, time.time()) is not None:
            return False
        return ledger_state.in_flight_on_stream(connection, stream, 1, _DUE_NOW) > 0

    def _start_scheduled(self, campaign_id: int) -> None:
        now = time.time()
        with self.outbox.engine.begin() as connection:
            row = q.lock_campaign(connection, campaign_id)
            # Its time is read again under the lock: it may have been moved meanwhile.
            if row is None or row.send_at is None or row.send_at > now:
                return
            q.update_campaign(
                connection,
                campaign_id,
                {"status": CampaignStatus.SENDING.value, "started_at": now, "updated_at": now},
                only_if=(CampaignStatus.SCHEDULED,),
            )

    def _judge_failures(self, campaign_id: int) -> None:
        # Every step: one indexed read of at most CAMPAIGN_FAILURE_SAMPLE rows, and a relay
        # refusing everything must stop the campaign within a window's worth of mail.
        sample = self.settings.CAMPAIGN_FAILURE_SAMPLE
        campaign = self._campaign(campaign_id)
        since = campaign.resumed_at or 0.0
        with self.outbox.engine.connect() as connection:
            sent, failed = ledger_state.recent_outcomes(
                connection, campaign_id, sample, since=since
            )
        if sent + failed < sample:
            return
        rate = failed / (sent + failed)
        limit = self.settings.CAMPAIGN_MAX_FAILURE_RATE
        if rate <= limit:
            return
        reason = (
            f"{failed} of its last {sent + failed} messages failed ({rate:.0%}), more than "
            f"CAMPAIGN_MAX_FAILURE_RATE ({limit:.0%}); the message log has the relay's replies"
        )
        try:
            control.pause(self.outbox.engine, campaign_id, reason=reason)
        except CampaignError:
            return  # paused or cancelled meanwhile
        logger.warning("campaign %d paused: %s", campaign_id, reason)

    def _finish_if_settled(self, campaign_id: int, done: RunnerStep) -> None:
        now = time.time()
        with self.outbox.engine.begin() as connection:
            row = q.lock_campaign(connection, campaign_id)
            if row is None or row.status != CampaignStatus.SENDING.value or not row.fanout_done:
                return
            if ledger_state.has_pending(connection, campaign_id):
                return
            if ledger_state.has_in_flight(connection, campaign_id):
                # Its last messages are being sent or due now: their outcomes are moments
                # away (a --once run waits for them; a deferred one it does not).
                done.blocked = ledger_state.has_in_flight(
                    connection, campaign_id, _DUE_NOW
                ) and not stream_queries.paused_until(connection, row.stream, now)
                return
            q.update_campaign(
                connection,
                campaign_id,
                {"status": CampaignStatus.FINISHED.value, "finished_at": now, "updated_at": now},
            )
        self._composers.pop(campaign_id, None)
        done.finished.append(campaign_id)
        logger.info("campaign %d finished", campaign_id)

    def _campaign(self, campaign_id: int) -> Campaign:
        with self.outbox.engine.connect() as connection:
            row = q.campaign_row(connection, campaign_id)
        if row is None:
            raise CampaignNotFoundError(campaign_id)
        return Campaign.from_row(row)

    def _composer(self, campaign: Campaign) -> CampaignComposer:
        # Once sending, a campaign's content cannot change: composed once per process.
        composer = self._composers.get(campaign.id)
        if composer is None:
            composer = CampaignComposer(
                campaign, self.settings, self.templates, UnsubscribeTokens(self.settings)
            )
            self._composers[campaign.id] = composer
        return composer


class CampaignThread:
    """Steps of a :class:`CampaignRunner` in a thread, until :meth:`stop`."""

    def __init__(self, runner: CampaignRunner, *, idle_sleep: float = _IDLE_SLEEP) -> None:
        self.runner = runner
        self.idle_sleep = idle_sleep
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mailroom-campaigns", daemon=True)

    @property
    def idle(self) -> bool:
        """The last step found nothing to do now."""
        return self._idle.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop after the step under way; whether it ended within ``timeout`` seconds."""
        self._stopping.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                step = self.runner.step()
            except Exception as exc:
                # The database away, most likely: the worker's own loop says so too. Idle
                # (a --once run is not kept waiting for it), and tried again later.
                logger.warning("the campaign runner's step failed: %s", exc)
                self._idle.set()
                self._stopping.wait(self.idle_sleep * 5)
                continue
            if step.more or step.queued or step.fanned_out:
                self._idle.clear()
                continue
            if step.blocked:
                self._idle.clear()
                self._stopping.wait(_BLOCKED_SLEEP)
                continue
            self._idle.set()
            self._stopping.wait(self.idle_sleep)


def worker_companions(settings: Settings, engine: Engine) -> list[CampaignThread]:
    """What a worker runs beside its sending (a
    :data:`~mailroom.delivery.companions.CompanionFactory`): the campaigns' steps, unless
    ``CAMPAIGN_FANOUT`` leaves them to Celery."""
    if settings.CAMPAIGN_FANOUT != "worker":
        return []
    return [CampaignThread(CampaignRunner(Outbox(settings, engine=engine)))]
