"""An application's audience: one broken campaign, invalid members, keys."""

from __future__ import annotations

import pytest

from mailroom.campaigns import fanout
from mailroom.campaigns.audiences import AudienceMember, register_audience
from mailroom.campaigns.progress import progress
from mailroom.campaigns.runner import CampaignRunner
from mailroom.campaigns.store import Campaigns
from mailroom.errors import CampaignError
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.campaign_lists import make_list
from support.campaign_review import draft, settings_for


def test_an_app_audience_raising_does_not_stop_later_campaigns(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 10)

    def broken(after: str | None, limit: int) -> list[AudienceMember]:
        raise ConnectionError("the application's database is away")  # or KeyError, ...

    register_audience("broken", broken)
    campaigns = Campaigns(outbox)
    first = campaigns.create(draft(audience="app:broken"))
    second = campaigns.create(draft())
    campaigns.start(first)
    campaigns.start(second)
    runner = CampaignRunner(outbox)
    for _ in range(5):
        try:
            runner.step()
        except Exception as exc:  # what CampaignThread._run catches, logs, and sleeps 5 s on
            print("step raised:", type(exc).__name__, exc)
    with outbox.engine.connect() as connection:
        counts = progress(connection, second)
    print("healthy campaign after 5 steps:", counts)
    assert counts.total > 0, "the healthy list campaign never got a single step"
    outbox.dispose()


def test_an_app_member_without_an_email_is_skipped_and_later_campaigns_go_on(
    database_url: str,
) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    make_list(outbox.engine, "readers", 10)
    register_audience(
        "users",
        lambda after, limit: [] if after else [AudienceMember("001", None)],  # type: ignore[arg-type]
    )
    campaigns = Campaigns(outbox)
    first = campaigns.create(draft(audience="app:users"))
    second = campaigns.create(draft())
    campaigns.start(first)
    campaigns.start(second)
    try:
        CampaignRunner(outbox).step()
    except Exception as exc:
        print("step raised:", type(exc).__name__, exc)
    with outbox.engine.connect() as connection:
        counts = progress(connection, second)
    assert counts.total > 0, "the list campaign got nothing"
    outbox.dispose()


def test_a_nul_in_an_app_member_does_not_wedge_the_campaign(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    register_audience(
        "nul",
        lambda after, limit: (
            []
            if after
            else [
                AudienceMember("001", "ada@example.com", name="Ada\x00"),
                AudienceMember("002", "bad\x00@example.com"),
            ]
        ),
    )
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft(audience="app:nul"))
    campaigns.start(cid)
    for _ in range(3):
        try:
            CampaignRunner(outbox).step()
        except Exception as exc:
            print("step raised:", type(exc).__name__, str(exc).splitlines()[0][:150])
    campaign = campaigns.get(cid)
    with outbox.engine.connect() as connection:
        counts = progress(connection, cid)
    print("checkpoint", campaign.fanout_checkpoint, "done", campaign.fanout_done, counts)
    assert campaign.fanout_done, "the fan-out never gets past the page"
    outbox.dispose()


def test_invalid_app_members_are_all_counted(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    members = [
        AudienceMember("001", ""),
        AudienceMember("002", ""),
        AudienceMember("003", "not an address"),
        AudienceMember("004", "NOT AN ADDRESS"),
        AudienceMember("005", "ok@example.com"),
    ]
    register_audience("mixed", lambda after, limit: [] if after else members)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft(audience="app:mixed"))
    campaigns.start(cid)
    CampaignRunner(outbox).step()
    with outbox.engine.connect() as connection:
        counts = progress(connection, cid)
    print(counts)
    assert counts.total == 5, f"5 members, {counts.total} in the ledger"
    outbox.dispose()


def test_an_audience_ignoring_after_key_is_refused_not_looped(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    page = [AudienceMember(f"{n:03}", f"u{n}@example.com") for n in range(20)]
    # A common bug in an app's pages(): the key filter is forgotten; every page is the first.
    register_audience("loop", lambda after, limit: page[:limit])
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft(audience="app:loop"))
    campaigns.start(cid)
    assert fanout.fan_out_page(outbox.engine, cid, page=20).added == 20
    with pytest.raises(CampaignError, match="must start after the key"):
        fanout.fan_out_page(outbox.engine, cid, page=20)
    assert campaigns.get(cid).fanout_checkpoint == "019"
    outbox.dispose()


def test_an_invalid_member_never_skips_a_valid_one(database_url: str) -> None:
    outbox = Outbox(settings_for(database_url))
    database.upgrade(outbox.engine)
    members = [
        AudienceMember("001", "ada@example.com\n"),  # a stray newline in the app's data
        AudienceMember("002", "ada@example.com"),  # another account, a good address
    ]
    register_audience("dupes", lambda after, limit: [] if after else members)
    campaigns = Campaigns(outbox)
    cid = campaigns.create(draft(audience="app:dupes"))
    campaigns.start(cid)
    CampaignRunner(outbox).step()
    with outbox.engine.connect() as connection:
        counts = progress(connection, cid)
    print("ada:", counts)
    assert counts.queued == 1, "a good address in the audience, and nobody gets the campaign"
    outbox.dispose()
