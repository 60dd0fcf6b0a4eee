"""`mailroom campaign send` (without --detach) when one progress read fails."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from sqlalchemy import Connection

from mailroom.campaigns.progress import Progress as Counts
from mailroom.campaigns.store import Campaigns
from mailroom.cli import campaign_watch as watch
from mailroom.errors import DatabaseBusyError
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for
from support.smtp_server import ScriptedHandler, ServerFactory


def test_one_failed_progress_read_does_not_stop_the_watch(
    database_url: str, smtp_server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server_factory(handler=ScriptedHandler())
    outbox = Outbox(settings_for(database_url, server.port))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 30)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft())
    campaign = campaigns.start(cid)

    real = watch.progress  # type: ignore[attr-defined]
    calls = [0]

    def flaky(connection: Connection, campaign_id: int) -> Counts:
        calls[0] += 1
        if calls[0] == 2:  # one busy read (SQLite's write lock, a PostgreSQL lock timeout)
            raise DatabaseBusyError("DATABASE_URL: busy")
        return real(connection, campaign_id)

    monkeypatch.setattr(watch, "progress", flaky)
    # Ctrl-C after 20 s, in case the command does not end on its own.
    timer = threading.Timer(20, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    ended = watch.watch_and_deliver(outbox, campaign)
    took = time.monotonic() - started
    timer.cancel()
    status = campaigns.get(cid).status
    print(f"campaign {status.value} after {took:.1f} s; the command returned {ended!r:.40}")
    assert status is CampaignStatus.FINISHED
    assert ended is not None
    assert took < 15, "finished, yet the command only ended at Ctrl-C"
    outbox.dispose()
