"""A --once worker with the campaigns beside it, when the relay cannot be reached."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from mailroom.campaigns.runner import worker_companions
from mailroom.campaigns.store import Campaigns
from mailroom.delivery.companions import CompanionFactory
from mailroom.delivery.worker import Worker
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(outbox: Outbox, companions: CompanionFactory | None, limit: float) -> float:
    worker = Worker(outbox.settings, engine=outbox.engine, once=True, companions=companions)
    started = time.monotonic()

    async def bounded() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.run(), timeout=limit)

    asyncio.run(bounded())
    return time.monotonic() - started


def test_once_ends_while_the_relay_is_unreachable(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url, closed_port()))
    database.upgrade(outbox.engine)
    # Without a campaign: plain mail to an unreachable relay; --once ends (stream paused).
    outbox.send_many([], stream="bulk") if False else None
    make_list(outbox.engine, "readers", 10)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaigns.start(cid)
    took = run_once(outbox, worker_companions, 20)
    print(f"--once with a campaign, relay unreachable: ran {took:.1f} s")
    assert took < 15, "--once is kept waiting on a paused stream (its companion is 'blocked')"
    outbox.dispose()


def test_control_plain_mail_once_ends(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url, closed_port()))
    database.upgrade(outbox.engine)
    outbox.send_many(
        [
            Message(to=[f"r{n}@example.com"], subject="s", text="t", from_email="news@example.com")
            for n in range(10)
        ],
        stream="bulk",
    )
    took = run_once(outbox, None, 20)
    print(f"--once, plain mail, relay unreachable: ran {took:.1f} s")
    outbox.dispose()
