"""The Campaigns pages against a real ``mailroom serve``: the list, the editor (a draft
created, refused with its errors by field, edited), its live preview as a contact (through
the script's endpoint and without a script) in a sandboxed frame, duplicate and delete, a
test send, send now and schedule, pause, resume and cancel, the progress endpoint the page
polls, the results (opens with proxy opens apart, clicks per link by URL) and a missing
setting named instead of a 500. Every POST is refused without its CSRF token."""

from __future__ import annotations

import email
import html
import re
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from mailroom.campaigns.store import Campaigns
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.schema import (
    campaign_recipients,
    campaigns,
    captured,
    contacts,
    mailing_lists,
    messages,
)
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import CampaignStatus, EventType, HitLabel
from support.admin_service import AdminService, csrf_token, running_admin_service, table_rows
from support.campaign_lists import make_list

READY = """\
ORGANIZATION_POSTAL_ADDRESS = "1 Main St, Springfield, IL 62701, USA"
TRACK_OPENS = ["bulk"]
TRACK_CLICKS = ["bulk"]
"""
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox"
)
BODY = (
    "<h1>Hello {{ contact.name }}</h1>\n"
    "<p>You are on the {{ contact.plan }} plan.</p>\n"
    '<p><a href="https://acme.example/news">Read the news</a></p>\n'
)
_FRAME = re.compile(r'<iframe[^>]*\bsandbox=""[^>]*\bsrc="([^"]+)"')


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminService]:
    with running_admin_service(tmp_path_factory.mktemp("campaigns"), READY) as running:
        yield running
        assert "Traceback" not in running.process.output, running.process.output
    assert running.process.watch.checked > 0


@pytest.fixture
def admin(service: AdminService) -> Iterator[httpx.Client]:
    # Campaigns and lists start afresh; messages, their events and captured mail stay (the
    # embedded worker may still be recording the last test's, and SQLite would give a
    # deleted message's number to a new one, its old events with it).
    with service.engine.begin() as connection:
        for table in (campaign_recipients, campaigns, contacts, mailing_lists):
            connection.execute(delete(table))
    make_list(service.engine, "Readers", 5)
    with closing(service.signed_in()) as client:
        yield client


def draft(token: str | None, **fields: str) -> dict[str, str]:
    values = {
        "name": "May news",
        "audience": "list:Readers",
        "subject": "News for {{ contact.name }}",
        "from_email": "Acme <news@acme.example>",
        "reply_to": "",
        "body_format": "html",
        "body": BODY,
        "as_contact": "",
        "campaign_id": "",
    }
    values.update(fields)
    if token is not None:
        values["csrf_token"] = token
    return values


def token_of(admin: httpx.Client) -> str:
    return csrf_token(admin.get("/admin/campaigns/new").text)


def create(admin: httpx.Client, **fields: str) -> int:
    answer = admin.post("/admin/campaigns/new", data=draft(token_of(admin), **fields))
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/admin/campaigns/(\d+)", answer.headers["location"])
    assert found, answer.headers["location"]
    return int(found.group(1))


def stored(service: AdminService) -> list[Any]:
    with service.engine.connect() as connection:
        return list(connection.execute(select(campaigns).order_by(campaigns.c.id)))


def notice(admin: httpx.Client, answer: httpx.Response) -> str:
    """The notice the page a POST redirected to shows."""
    assert answer.status_code == 303, answer.text
    page = admin.get(answer.headers["location"]).text
    found = re.search(r'<div class="notice notice-\w+" role="status">(.*?)</div>', page, re.S)
    assert found, "the page shows no notice"
    return html.unescape(found.group(1))


def frame_of(admin: httpx.Client, page: str) -> httpx.Response:
    found = _FRAME.search(page)
    assert found is not None, "no sandboxed preview frame with a source"
    return admin.get(html.unescape(found.group(1)))


def preview(admin: httpx.Client, **fields: str) -> dict[str, Any]:
    token = token_of(admin)
    answer = admin.post(
        "/admin/api/campaigns/preview", data=draft(None, **fields), headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_status(
    service: AdminService, campaign_id: int, status: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        (row,) = [r for r in stored(service) if r.id == campaign_id]
        if row.status == status:
            return
        assert time.monotonic() < deadline, f"campaign {campaign_id} is {row.status}, not {status}"
        time.sleep(0.1)


def test_the_pages_need_a_session(service: AdminService) -> None:
    with service.client() as anonymous:
        for path in ("/admin/campaigns", "/admin/campaigns/new", "/admin/campaigns/1"):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login?next=")
        assert anonymous.post("/admin/api/campaigns/preview", data={}).status_code == 401
        assert anonymous.get("/admin/api/campaigns/1/progress").status_code == 401


def test_the_list_and_the_new_form(service: AdminService, admin: httpx.Client) -> None:
    empty = admin.get("/admin/campaigns")
    assert empty.status_code == 200
    assert 'href="/admin/campaigns" aria-current="page">Campaigns</a>' in empty.text
    assert "No campaign yet" in empty.text
    make_list(service.engine, "Alumni", 1, start=100)
    form = admin.get("/admin/campaigns/new").text
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', form)
    assert options == [
        ("list:Alumni", "Alumni (1 contact)"),
        ("list:Readers", "Readers (5 contacts)"),
    ]
    assert 'value="Acme &lt;noreply@acme.example&gt;"' in form  # DEFAULT_FROM_EMAIL
    create(admin)
    rows = table_rows(admin.get("/admin/campaigns").text, "campaigns-list")
    assert rows == [["May news News for {{ contact.name }}", "draft", "Readers", "0", "0", "0", "0",
                     "just now"]]  # fmt: skip


def test_a_draft_is_saved_and_edited_with_csrf(service: AdminService, admin: httpx.Client) -> None:
    refused = admin.post("/admin/campaigns/new", data=draft(None))
    assert refused.status_code == 403
    assert refused.text.count("csrf_token") >= 1  # the form page again, not a crash
    assert stored(service) == []

    campaign_id = create(admin)
    (row,) = stored(service)
    assert (row.name, row.status, row.audience, row.body) == (
        "May news",
        "draft",
        "list:Readers",
        BODY,
    )
    assert row.from_email == "Acme <news@acme.example>"
    page = admin.get(f"/admin/campaigns/{campaign_id}").text
    assert "Saved the draft “May news”." in page
    assert f'href="/admin/campaigns/{campaign_id}/edit"' in page

    edit = admin.get(f"/admin/campaigns/{campaign_id}/edit").text
    assert "&lt;h1&gt;Hello {{ contact.name }}&lt;/h1&gt;" in edit
    answer = admin.post(
        f"/admin/campaigns/{campaign_id}/edit",
        data=draft(
            csrf_token(edit),
            name="June news",
            body="# Hi {{ contact.name }}",
            body_format="markdown",
            reply_to="replies@acme.example",
        ),
    )
    assert answer.status_code == 303
    (row,) = stored(service)
    assert (row.name, row.body_format, row.reply_to) == (
        "June news",
        "markdown",
        "replies@acme.example",
    )
    # CRLF line breaks from the browser are stored as typed.
    admin.post(
        f"/admin/campaigns/{campaign_id}/edit",
        data=draft(csrf_token(edit), body="<p>a</p>\r\n<p>b</p>"),
    )
    assert stored(service)[0].body == "<p>a</p>\n<p>b</p>"


def test_a_refused_draft_names_each_field_and_keeps_what_was_typed(
    service: AdminService, admin: httpx.Client
) -> None:
    token = token_of(admin)
    bad_from = admin.post("/admin/campaigns/new", data=draft(token, from_email="not an address"))
    assert bad_from.status_code == 422
    assert 'id="campaign-from_email-error"' in bad_from.text
    assert 'id="campaign-from" name="from_email"' in bad_from.text
    assert 'value="not an address"' in bad_from.text

    syntax = admin.post(
        "/admin/campaigns/new",
        data=draft(token, body="<p>one</p>\n<p>two</p>\n<p>{{ contact.name }</p>"),
    )
    assert syntax.status_code == 422
    error = re.search(r'id="campaign-body-error">(.*?)</p>', syntax.text)
    assert error is not None
    assert html.unescape(error.group(1)).startswith("Line 3: syntax error")

    no_list = admin.post("/admin/campaigns/new", data=draft(token, audience="list:Gone"))
    assert no_list.status_code == 422
    assert "there is no mailing list &#39;Gone&#39;" in no_list.text
    assert stored(service) == []


def test_the_live_preview_is_the_contacts_message_in_a_sandboxed_frame(
    admin: httpx.Client,
) -> None:
    token = token_of(admin)
    without = admin.post("/admin/api/campaigns/preview", data=draft(None))
    assert without.status_code == 403  # no X-CSRF-Token header

    first = preview(admin)
    assert first["errors"] == []
    assert first["subject"] == "News for Reader 0"
    assert first["to"] == "Reader 0 <reader0@example.com>"
    assert "You are on the free plan." in first["text"]
    assert "1 Main St, Springfield" in first["text"]  # the footer, with the postal address
    frame = admin.get(first["html_url"])
    assert frame.status_code == 200
    assert frame.headers["content-security-policy"] == PREVIEW_CSP
    assert "<h1>Hello Reader 0</h1>" in frame.text
    assert "https://mailroom.example/unsubscribe/" in frame.text
    with httpx.Client(base_url=str(admin.base_url)) as stranger:
        assert stranger.get(first["html_url"]).status_code == 303  # a session is needed

    as_three = preview(admin, as_contact="Reader3@Example.com")
    assert as_three["to"] == "Reader 3 <reader3@example.com>"
    assert "You are on the pro plan." in as_three["text"]

    markdown = preview(admin, body_format="markdown", body="Hi **{{ contact.name }}**")
    assert "<strong>Reader 0</strong>" in admin.get(markdown["html_url"]).text

    missing = preview(admin, as_contact="nobody@example.com")
    assert missing["errors"] == [
        {"part": "as_contact", "line": None,
         "message": "nobody@example.com is not a contact of the list 'Readers'"}
    ]  # fmt: skip
    syntax = preview(admin, body="<p>a</p>\n\n{% if %}")
    assert [(e["part"], e["line"]) for e in syntax["errors"]] == [("body", 3)]
    assert syntax["html_url"] is None
    undefined = preview(admin, body="<p>a</p>\n<p>{{ contact.missing.deeper }}</p>")
    assert [(e["part"], e["line"]) for e in undefined["errors"]] == [("body", 2)]
    # In Markdown the line of the HTML made from it would mislead: none is given.
    in_markdown = preview(admin, body_format="markdown", body="a\n\n{{ contact.missing.deeper }}")
    assert [(e["part"], e["line"]) for e in in_markdown["errors"]] == [("body", None)]
    subject = preview(admin, subject="Hi {{ contact.name ")
    assert [e["part"] for e in subject["errors"]] == ["subject"]
    assert token  # the page's token was what the script sent


def test_the_preview_button_works_without_a_script(admin: httpx.Client) -> None:
    token = token_of(admin)
    page = admin.post(
        "/admin/campaigns/preview", data=draft(token, as_contact="reader2@example.com")
    )
    assert page.status_code == 200
    assert "Reader 2 &lt;reader2@example.com&gt;" in page.text
    assert "<h1>Hello Reader 2</h1>" in frame_of(admin, page.text).text
    assert admin.post("/admin/campaigns/preview", data=draft(None)).status_code == 403


def test_the_campaign_page_previews_as_a_chosen_contact(admin: httpx.Client) -> None:
    campaign_id = create(admin)
    page = admin.get(
        f"/admin/campaigns/{campaign_id}", params={"as_contact": "reader4@example.com"}
    )
    assert page.status_code == 200
    assert "Reader 4 &lt;reader4@example.com&gt;" in page.text
    assert "<h1>Hello Reader 4</h1>" in frame_of(admin, page.text).text
    assert "It would go to 5 contacts." in page.text
    assert admin.get("/admin/campaigns/999999").status_code == 404


def test_duplicate_and_delete(service: AdminService, admin: httpx.Client) -> None:
    campaign_id = create(admin)
    token = token_of(admin)
    assert admin.post(f"/admin/campaigns/{campaign_id}/duplicate", data={}).status_code == 403
    copy = admin.post(f"/admin/campaigns/{campaign_id}/duplicate", data={"csrf_token": token})
    assert copy.status_code == 303
    copy_id = campaign_id + 1
    assert copy.headers["location"] == f"/admin/campaigns/{copy_id}/edit"
    original, duplicate = stored(service)
    assert (duplicate.name, duplicate.body, duplicate.duplicated_from) == (
        "Copy of May news",
        original.body,
        campaign_id,
    )
    assert admin.post(f"/admin/campaigns/{copy_id}/delete", data={}).status_code == 403
    gone = admin.post(f"/admin/campaigns/{copy_id}/delete", data={"csrf_token": token})
    assert "Deleted the draft “Copy of May news”." in notice(admin, gone)
    assert [row.id for row in stored(service)] == [campaign_id]


def test_a_test_send_goes_to_the_addresses_given(
    service: AdminService, admin: httpx.Client
) -> None:
    campaign_id = create(admin)
    token = token_of(admin)
    url = f"/admin/campaigns/{campaign_id}/test"
    assert admin.post(url, data={"addresses": "me@example.com"}).status_code == 403
    sent = admin.post(
        url,
        data={
            "csrf_token": token,
            "addresses": "me@example.com, you@example.com",
            "as_contact": "reader1@example.com",
        },
    )
    assert notice(admin, sent).startswith("Test sent to me@example.com, you@example.com")
    with service.engine.connect() as connection:
        rows = list(
            connection.execute(
                select(messages.c.recipients, messages.c.subject).where(
                    messages.c.subject.startswith("[Test] ")
                )
            )
        )
    assert sorted((list(r.recipients), r.subject) for r in rows) == [
        (["me@example.com"], "[Test] News for Reader 1"),
        (["you@example.com"], "[Test] News for Reader 1"),
    ]
    bad = admin.post(url, data={"csrf_token": token, "addresses": "not-an-address"})
    assert notice(admin, bad).startswith("No test sent:")
    assert stored(service)[0].status == "draft"  # a test changes nothing of the campaign


def test_send_now_runs_to_the_end_with_progress_and_results(
    service: AdminService, admin: httpx.Client
) -> None:
    campaign_id = create(admin)
    token = token_of(admin)
    page = admin.get(f"/admin/campaigns/{campaign_id}").text
    assert f'action="/admin/campaigns/{campaign_id}/send"' in page
    assert "data-confirm=" in page  # the send asks first
    assert admin.post(f"/admin/campaigns/{campaign_id}/send", data={}).status_code == 403
    started = admin.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": token})
    assert notice(admin, started).startswith("Sending")
    wait_status(service, campaign_id, "finished")

    progress = admin.get(f"/admin/api/campaigns/{campaign_id}/progress")
    assert progress.headers["cache-control"] == "no-store"
    assert progress.json() == {
        "status": "finished", "paused_reason": None, "live": False, "expected": 5,
        "settled": 5, "remaining": 0, "percent": 100,
        "counts": {"pending": 0, "queued": 0, "sent": 5, "failed": 0, "suppressed": 0,
                   "skipped": 0, "total": 5},
    }  # fmt: skip
    assert admin.get("/admin/api/campaigns/999999/progress").status_code == 404

    # People's opens, a privacy proxy's, and clicks on the one link: derived from the events.
    with service.engine.begin() as connection:
        rows = list(
            connection.execute(
                select(campaign_recipients.c.message_pk, campaign_recipients.c.address)
                .where(campaign_recipients.c.campaign_id == campaign_id)
                .order_by(campaign_recipients.c.id)
            )
        )
        now = time.time()

        def hit(n: int, kind: EventType, label: HitLabel, link: int | None = None) -> EventRecord:
            return EventRecord(rows[n].message_pk, rows[n].address, kind, now, label, link)

        record_events(
            connection,
            [
                hit(0, EventType.OPENED, HitLabel.HUMAN),
                hit(0, EventType.OPENED, HitLabel.HUMAN),
                hit(1, EventType.OPENED, HitLabel.PREFETCH),
                hit(0, EventType.CLICKED, HitLabel.HUMAN, 0),
                hit(2, EventType.CLICKED, HitLabel.SCANNER, 0),
            ],
        )
    # One recipient unsubscribes with the one-click POST of their message's List-Unsubscribe:
    # the link names the list, not the message, and still counts for the campaign.
    with service.engine.connect() as connection:
        data = connection.execute(
            select(captured.c.data).where(captured.c.message_pk == rows[3].message_pk)
        ).scalar_one()
    header = str(email.message_from_bytes(data)["List-Unsubscribe"])
    found = re.search(r"<https://mailroom\.example(/unsubscribe/[^>]+)>", header)
    assert found, header
    with service.client() as recipient:
        one_click = recipient.post(found.group(1), data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200, one_click.text
    page = admin.get(f"/admin/campaigns/{campaign_id}").text
    assert "data-progress-percent>100 %<" in page
    assert "data-progress-url" not in page  # finished: nothing to follow
    stat = (
        r'<li class="stat"><span class="stat-value">([\d,]+)</span>'
        r'<span class="stat-label">([^<]+)<'
    )
    results = {label: value for value, label in re.findall(stat, page)}
    assert results == {
        "Sent": "5", "Failed": "0", "Bounced": "0", "Unsubscribed": "1", "Opened": "1",
        "Proxy opens": "1", "Clicked": "1",
    }  # fmt: skip
    assert "2 opens in all, by people" in page
    assert "1 click in all, by people" in page
    assert table_rows(page, "campaign-links") == [["1", "https://acme.example/news", "1", "1", "1"]]
    timeline = table_rows(page, "campaign-timeline")
    assert sum(int(row[1]) for row in timeline) == 5  # sent, over time
    assert sum(int(row[3]) for row in timeline) == 3  # every open
    assert '<svg class="hourly-chart campaign-chart"' in page
    # Finished: no send, edit, pause or delete; duplicate still.
    for action in ("send", "pause", "resume", "cancel", "delete"):
        assert f'action="/admin/campaigns/{campaign_id}/{action}"' not in page, action
    assert f'action="/admin/campaigns/{campaign_id}/duplicate"' in page
    listed = table_rows(admin.get("/admin/campaigns").text, "campaigns-list")
    assert listed[0][1:7] == ["finished", "Readers", "5", "5", "0", "0"]
    # A finished campaign's content is fixed: its editor sends back to its page.
    edit = admin.get(f"/admin/campaigns/{campaign_id}/edit")
    assert edit.status_code == 303
    assert "its content is fixed" in notice(admin, edit)


def test_schedule_pause_resume_cancel(service: AdminService, admin: httpx.Client) -> None:
    campaign_id = create(admin)
    token = token_of(admin)
    url = f"/admin/campaigns/{campaign_id}"
    past = admin.post(f"{url}/send", data={"csrf_token": token, "send_at": "2001-01-01T10:00"})
    assert "has passed" in notice(admin, past)
    garbled = admin.post(f"{url}/send", data={"csrf_token": token, "send_at": "tomorrow"})
    assert "YYYY-MM-DD" in notice(admin, garbled)
    assert stored(service)[0].status == "draft"

    scheduled = admin.post(f"{url}/send", data={"csrf_token": token, "send_at": "2099-03-04T05:06"})
    assert notice(admin, scheduled) == "Scheduled: it starts sending at 2099-03-04 05:06:00 UTC."
    page = admin.get(url).text
    assert f'data-progress-url="/admin/api/campaigns/{campaign_id}/progress"' in page  # followed
    assert f'action="{url}/pause"' in page
    assert f'action="{url}/cancel"' in page
    assert f'action="{url}/edit"' not in page

    for action in ("pause", "resume", "cancel"):
        assert admin.post(f"{url}/{action}", data={}).status_code == 403, action
    paused = admin.post(f"{url}/pause", data={"csrf_token": token})
    assert notice(admin, paused).startswith("Paused")
    page = admin.get(url).text
    assert f'action="{url}/resume"' in page
    # Resuming a campaign paused before its time sends it at once: the button says so first.
    assert "the time it was scheduled for (2099-03-04 05:06:00 UTC) is not kept" in page
    assert f'action="{url}/pause"' not in page
    again = admin.post(f"{url}/pause", data={"csrf_token": token})
    assert "only one that is sending or scheduled can be paused" in notice(admin, again)
    resumed = admin.post(f"{url}/resume", data={"csrf_token": token})
    assert notice(admin, resumed).startswith("Resumed")
    cancelled = admin.post(f"{url}/cancel", data={"csrf_token": token})
    assert notice(admin, cancelled).startswith("Cancelled")
    assert stored(service)[0].status == CampaignStatus.CANCELLED.value
    refused = admin.post(f"{url}/delete", data={"csrf_token": token})
    assert "only a draft can be deleted" in notice(admin, refused)


def test_a_missing_postal_address_is_named_not_a_crash(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_admin_service(tmp_path_factory.mktemp("no-address")) as bare:
        make_list(bare.engine, "Readers", 2)
        with closing(bare.signed_in()) as admin:
            campaign_id = create(admin)
            page = admin.get(f"/admin/campaigns/{campaign_id}")
            assert page.status_code == 200
            assert '<code class="mono">ORGANIZATION_POSTAL_ADDRESS</code>' in page.text
            assert "CAN-SPAM" in page.text
            answer = preview(admin)
            assert [e["part"] for e in answer["errors"]] == ["settings"]
            assert answer["errors"][0]["message"].startswith("ORGANIZATION_POSTAL_ADDRESS: ")
            token = csrf_token(page.text)
            refused = admin.post(f"/admin/campaigns/{campaign_id}/send", data={"csrf_token": token})
            assert notice(admin, refused).startswith("Not sent: set ORGANIZATION_POSTAL_ADDRESS")
            test = admin.post(
                f"/admin/campaigns/{campaign_id}/test",
                data={"csrf_token": token, "addresses": "me@example.com"},
            )
            assert "ORGANIZATION_POSTAL_ADDRESS" in notice(admin, test)
        outbox = Outbox(bare.settings, engine=bare.engine)
        assert Campaigns(outbox).get(campaign_id).status is CampaignStatus.DRAFT
        assert "Traceback" not in bare.process.output
