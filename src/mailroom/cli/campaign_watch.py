"""``mailroom campaign send``'s watch: a worker in this process delivers while a Rich progress
bar shows the campaign's recipients by outcome, its rate and the time left, until it ends or
Ctrl-C detaches it."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import func, select

from mailroom.campaigns.progress import Progress as Counts
from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import worker_companions
from mailroom.campaigns.store import Campaign, Campaigns, list_id_of
from mailroom.delivery import loop
from mailroom.delivery.worker import Worker
from mailroom.outbox.schema import contacts
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus

__all__ = ["watch_and_deliver"]

_WATCH_INTERVAL = 0.5  # seconds between two reads of the progress
_ENDED = (CampaignStatus.FINISHED, CampaignStatus.CANCELLED, CampaignStatus.PAUSED)


def _expected(outbox: Outbox, campaign: Campaign, counts: Counts) -> int:
    """The audience's size as far as it is known: the ledger once the fan-out is done, else
    the list's contacts (an application's audience: the ledger so far)."""
    if campaign.fanout_done or campaign.list_name is None:
        return counts.total
    with outbox.engine.connect() as connection:
        list_id = list_id_of(connection, campaign.list_name)
        if list_id is None:
            return counts.total
        size = connection.execute(
            select(func.count()).where(contacts.c.list_id == list_id)
        ).scalar_one()
    return max(int(size), counts.total)


def watch_and_deliver(outbox: Outbox, campaign: Campaign) -> Campaign | None:
    """Run a worker here and show the campaign's progress until it ends (finished,
    cancelled, paused) or Ctrl-C; the campaign as it ended, or ``None`` when detached."""
    settings = outbox.settings
    worker = Worker(settings, companions=worker_companions)
    console = Console(stderr=True)
    bar = Progress(
        TextColumn(f"campaign {campaign.id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[sent]} sent · {task.fields[failed]} failed · "
            "{task.fields[suppressed]} suppressed · {task.fields[remaining]} remaining · "
            "{task.fields[rate]}/s"
        ),
        TimeRemainingColumn(),
        console=console,
    )
    started = time.monotonic()
    last: list[Campaign | None] = [None]
    detached = [False]

    def read() -> tuple[Campaign, Counts]:
        current = Campaigns(outbox).get(campaign.id)
        with outbox.engine.connect() as connection:
            return current, progress(connection, campaign.id)

    async def watch(task: Any) -> None:
        while True:
            try:
                current, counts = await asyncio.to_thread(read)
            except Exception as exc:
                # The database busy or away for a moment: the worker says so too; the bar
                # waits for the next read rather than ending silently while the worker runs.
                console.log(f"could not read the progress: {exc}")
                await asyncio.sleep(_WATCH_INTERVAL * 4)
                continue
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(
                task,
                total=_expected(outbox, current, counts),
                completed=counts.settled,
                sent=counts.sent,
                failed=counts.failed,
                suppressed=counts.suppressed + counts.skipped,
                remaining=counts.remaining,
                rate=f"{counts.sent / elapsed:,.0f}",
            )
            if current.status in _ENDED:
                last[0] = current
                worker.stop()
                return
            await asyncio.sleep(_WATCH_INTERVAL)

    async def run() -> None:
        running = asyncio.get_running_loop()

        def detach() -> None:
            detached[0] = True
            worker.stop()

        for signum in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(signum, detach)
        with bar:
            task = bar.add_task(
                "send", total=None, sent=0, failed=0, suppressed=0, remaining=0, rate="0"
            )
            watcher = asyncio.create_task(watch(task))
            try:
                await worker.run()
            finally:
                watcher.cancel()

    loop.run(run(), settings.WORKER_EVENT_LOOP)
    if detached[0] or last[0] is None:
        click.echo(
            f"detached: campaign {campaign.id} goes on with the running workers; "
            f"`mailroom campaign status {campaign.id}` shows where it is",
            err=True,
        )
        return None
    ended = last[0]
    with outbox.engine.connect() as connection:
        counts = progress(connection, campaign.id)
    click.echo(
        f"campaign {campaign.id} {ended.status.value}: {counts.sent} sent, {counts.failed} "
        f"failed, {counts.suppressed} suppressed, {counts.skipped} skipped, "
        f"{counts.remaining} remaining, in {time.monotonic() - started:.1f} s"
    )
    return ended
