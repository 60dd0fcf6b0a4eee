"""``/api/v1/campaigns`` over HTTP against a real ``mailroom serve`` on SQLite and on
PostgreSQL: its embedded worker runs the campaigns and delivers to the capture transport, the
public endpoints record the opens and clicks, and the stats are read back through the API.

The lists are written straight into the tables (:mod:`support.campaign_lists`); everything
else goes through HTTP.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import lxml.html
import pytest
from sqlalchemy import Engine, select, update

from mailroom.config import load_settings
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import campaign_recipients, mailing_lists, messages
from mailroom.tracking import SCANNER_CLICK_SECONDS
from support.api_service import ApiService, running_api_service
from support.campaign_lists import make_list
from support.mail_checks import assert_well_formed, html_part

POSTAL = "Acme Ltd, 1 Main St, Springfield, IL 62701, USA"
PUBLIC = "https://mailroom.example"  # the service's PUBLIC_BASE_URL (support.api_service)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BODY = (
    "<html><body><p>Hello {{ contact.name }}, you are on {{ contact.plan }}.</p>"
    '<p><a href="https://example.com/read">Read it</a> or '
    '<a href="https://example.com/shop">visit the shop</a>.</p></body></html>'
)
WAIT = 60.0  # seconds a campaign of a few dozen gets to be delivered on a busy machine

_names = itertools.count(1)


@dataclass
class Served:
    """The service and an engine on its database (for the lists)."""

    api: ApiService
    engine: Engine

    def admin(self) -> httpx.Client:
        return self.api.client(self.api.admin_key)

    def new_list(self, count: int) -> str:
        """A new list of ``count`` contacts; the campaign audience naming it."""
        name = f"readers-{next(_names)}"
        make_list(self.engine, name, count)
        return f"list:{name}"


@pytest.fixture(scope="module")
def served(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = {
        "ORGANIZATION_POSTAL_ADDRESS": POSTAL,
        "TRACK_OPENS": "bulk",
        "TRACK_CLICKS": "bulk",
        "EMAILS_PER_TASK": "10",
        "CAMPAIGN_QUEUE_AHEAD": "20",
        # Slow enough that a pause or a cancel lands mid-campaign; small claims, so that some
        # messages usually still wait in the outbox for a pause to take back.
        "EMAIL_RATE_LIMIT": "25/s",
        "WORKER_BATCH_SIZE": "5",
    }
    with running_api_service(
        tmp_path_factory.mktemp("campaigns"),
        database_url=module_database_url,
        more_settings=settings,
    ) as api:
        engine = create_outbox_engine(module_database_url)
        try:
            yield Served(api, engine)
        finally:
            engine.dispose()
    assert api.watch.checked > 0


def draft(audience: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "December news",
        "audience": audience,
        "subject": "News for {{ contact.name }}",
        "from_email": "News <news@acme.example>",
        "body": BODY,
        **changes,
    }


def created(admin: httpx.Client, audience: str, **changes: Any) -> dict[str, Any]:
    answer = admin.post("/api/v1/campaigns", json=draft(audience, **changes))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    return error


def wait_for(check: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)


def stats(admin: httpx.Client, campaign_id: int, **params: Any) -> dict[str, Any]:
    answer = admin.get(f"/api/v1/campaigns/{campaign_id}/stats", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def captured(admin: httpx.Client, search: str) -> list[dict[str, Any]]:
    """Every captured message whose subject or addresses contain ``search``."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200, "search": search}
    while True:
        page = admin.get("/api/v1/captured", params=params).json()
        found += page["items"]
        if page["next"] is None:
            return found
        params["before"] = page["next"]


def raw(admin: httpx.Client, captured_id: int) -> EmailMessage:
    answer = admin.get(f"/api/v1/captured/{captured_id}/raw")
    assert answer.status_code == 200
    return assert_well_formed(answer.content)


# -- who may call -----------------------------------------------------------------------------

ROUTES = [
    ("POST", "/api/v1/campaigns", draft("list:x")),
    ("GET", "/api/v1/campaigns", None),
    ("GET", "/api/v1/campaigns/1", None),
    ("PATCH", "/api/v1/campaigns/1", {"subject": "Hi"}),
    ("DELETE", "/api/v1/campaigns/1", None),
    ("POST", "/api/v1/campaigns/1/duplicate", None),
    ("POST", "/api/v1/campaigns/1/test", {"to": ["qa@example.com"]}),
    ("POST", "/api/v1/campaigns/1/send", None),
    ("POST", "/api/v1/campaigns/1/pause", None),
    ("POST", "/api/v1/campaigns/1/resume", None),
    ("POST", "/api/v1/campaigns/1/cancel", None),
    ("POST", "/api/v1/campaigns/1/retry-failed", None),
    ("GET", "/api/v1/campaigns/1/stats", None),
]


def test_every_route_needs_an_admin_key(served: Served) -> None:
    api = served.api
    with (
        api.client() as nobody,
        api.client(api.revoked_key) as revoked,
        api.client(api.send_key) as sender,
    ):
        for method, path, body in ROUTES:
            for client in (nobody, revoked):
                answer = client.request(method, path, json=body)
                assert error_of(answer, 401)["code"] == "unauthorized", (method, path)
                assert answer.headers["www-authenticate"] == "Bearer"
            forbidden = sender.request(method, path, json=body)
            assert error_of(forbidden, 403)["code"] == "forbidden", (method, path)
    with served.admin() as admin:
        assert admin.get("/api/v1/campaigns", params={"limit": 500}).json()["items"] == []


# -- writing ----------------------------------------------------------------------------------


def test_create_read_list_edit_duplicate_and_delete_a_draft(served: Served) -> None:
    audience = served.new_list(3)
    with served.admin() as admin:
        first = created(admin, audience, reply_to="Desk <desk@acme.example>")
        assert first["status"] == "draft"
        assert first["audience"] == audience
        assert first["subject"] == "News for {{ contact.name }}"
        assert first["from_email"] == "News <news@acme.example>"
        assert first["reply_to"] == "Desk <desk@acme.example>"
        assert first["body"] == BODY
        assert first["body_format"] == "html"
        assert first["stream"] == "bulk"  # CAMPAIGN_STREAM
        assert first["send_at"] is None
        assert first["fanout_done"] is False
        second = created(
            admin, audience, name="  Spring   sale ", body="# Sale\n\n{{ contact.name }}",
            body_format="markdown", stream="promotions",
        )  # fmt: skip
        assert second["name"] == "Spring sale"
        assert (second["body_format"], second["stream"]) == ("markdown", "promotions")

        read = admin.get(f"/api/v1/campaigns/{first['id']}")
        assert read.status_code == 200
        assert read.json() == first

        listed = admin.get("/api/v1/campaigns").json()["items"]
        ids = [item["id"] for item in listed]
        assert ids[:2] == [second["id"], first["id"]]  # newest first
        assert "body" not in listed[0]
        assert [i["id"] for i in admin.get("/api/v1/campaigns?limit=1").json()["items"]] == [
            second["id"]
        ]

        edited = admin.patch(
            f"/api/v1/campaigns/{first['id']}",
            json={"subject": "Hello {{ contact.name }}", "reply_to": None},
        )
        assert edited.status_code == 200, edited.text
        after = edited.json()
        assert after["subject"] == "Hello {{ contact.name }}"
        assert after["reply_to"] is None
        assert after["body"] == BODY  # left out: unchanged
        assert after["name"] == first["name"]
        assert admin.get(f"/api/v1/campaigns/{first['id']}").json() == after

        copy = admin.post(f"/api/v1/campaigns/{first['id']}/duplicate")
        assert copy.status_code == 201, copy.text
        assert copy.json()["name"] == "Copy of December news"
        assert copy.json()["duplicated_from"] == first["id"]
        assert copy.json()["subject"] == after["subject"]
        named = admin.post(f"/api/v1/campaigns/{first['id']}/duplicate", json={"name": "Again"})
        assert named.json()["name"] == "Again"
        for bad in ("  ", "a\x00b", "x" * 201):
            refused = admin.post(f"/api/v1/campaigns/{first['id']}/duplicate", json={"name": bad})
            assert error_of(refused, 422)["field"] == "name"

        gone = admin.delete(f"/api/v1/campaigns/{named.json()['id']}")
        assert gone.status_code == 204
        assert gone.content == b""
        for answer in (
            admin.get(f"/api/v1/campaigns/{named.json()['id']}"),
            admin.delete(f"/api/v1/campaigns/{named.json()['id']}"),
        ):
            assert error_of(answer, 404)["message"] == f"there is no campaign {named.json()['id']}"


def test_unknown_campaigns_answer_404_on_every_route(served: Served) -> None:
    missing = 987_654
    with served.admin() as admin:
        for method, path, body in ROUTES:
            if "/1" not in path:
                continue
            answer = admin.request(method, path.replace("/1", f"/{missing}", 1), json=body)
            error = error_of(answer, 404)
            assert error["code"] == "not_found", (method, path)
            assert error["message"] == f"there is no campaign {missing}"


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"from_email": "not an address"}, "from_email", "from_email: "),
        ({"reply_to": "a@b@c"}, "reply_to", "reply_to: "),
        ({"audience": "everyone"}, "audience", "neither a mailing list"),
        ({"audience": "list:nobody-here"}, "audience", "there is no mailing list 'nobody-here'"),
        ({"name": "   "}, "name", "must be 1 to 200 characters"),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
        ({"subject": "Hi\r\nBcc: all@example.com"}, "subject", "one line"),
        ({"body": "   "}, "body", "must be 1 to 1,000,000 characters"),
        ({"body": "<p>a\x00b</p>"}, "body", "NUL"),
        ({"name": "a\x00b"}, "name", "NUL"),
        ({"body_format": "text"}, "body_format", "'html' or 'markdown'"),
        ({"stream": ""}, "stream", "at least 1 character"),
        ({"stream": "s" * 65}, "stream", "at most 64 characters"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    served: Served, changes: dict[str, Any], field: str, says: str
) -> None:
    audience = served.new_list(1)
    with served.admin() as admin:
        error = error_of(admin.post("/api/v1/campaigns", json={**draft(audience), **changes}), 422)
        assert error["field"] == field
        assert says in error["message"]
        # The same content refused as an edit of a draft, the draft unchanged.
        campaign = created(admin, audience)
        edit = admin.patch(f"/api/v1/campaigns/{campaign['id']}", json=changes)
        assert error_of(edit, 422)["field"] == field
        assert admin.get(f"/api/v1/campaigns/{campaign['id']}").json() == campaign


def test_a_missing_field_and_a_null_are_refused_naming_them(served: Served) -> None:
    audience = served.new_list(1)
    with served.admin() as admin:
        without = {k: v for k, v in draft(audience).items() if k != "subject"}
        assert error_of(admin.post("/api/v1/campaigns", json=without), 422)["field"] == "subject"
        campaign = created(admin, audience)
        for name in ("name", "audience", "subject", "from_email", "body", "body_format"):
            edit = admin.patch(f"/api/v1/campaigns/{campaign['id']}", json={name: None})
            error = error_of(edit, 422)
            assert error["field"] == name
            assert "not null" in error["message"]


def test_a_template_syntax_error_is_a_422_with_its_line(served: Served) -> None:
    audience = served.new_list(1)
    with served.admin() as admin:
        body = "<html><body>\n<p>Hello</p>\n<p>{{ contact.name </p>\n</body></html>"
        error = error_of(admin.post("/api/v1/campaigns", json=draft(audience, body=body)), 422)
        assert error["code"] == "invalid_template"
        assert error["field"] == "body"
        assert error["message"].startswith("body: syntax error on line 3")

        subject = "Hi {% if %}"
        error = error_of(
            admin.post("/api/v1/campaigns", json=draft(audience, subject=subject)), 422
        )
        assert (error["code"], error["field"]) == ("invalid_template", "subject")
        assert "syntax error on line 1" in error["message"]


def test_a_body_over_the_api_limit_is_refused_before_it_is_read(served: Served) -> None:
    audience = served.new_list(1)
    with served.admin() as admin:
        # API_MAX_BODY_BYTES is 100,000 in this service.
        answer = admin.post("/api/v1/campaigns", json=draft(audience, body="x" * 150_000))
    assert error_of(answer, 413)["code"] == "body_too_large"


# -- state ------------------------------------------------------------------------------------


def test_actions_the_state_does_not_allow_are_409_with_the_stores_words(served: Served) -> None:
    audience = served.new_list(0)  # nobody: what is started finishes at once, unsent
    with served.admin() as admin:
        campaign = created(admin, audience)
        path = f"/api/v1/campaigns/{campaign['id']}"
        for action, says in (
            ("resume", "only a paused one can be resumed"),
            ("pause", "only one that is sending or scheduled can be paused"),
            ("retry-failed", "it has no failed recipients to retry"),
        ):
            error = error_of(admin.post(f"{path}/{action}"), 409)
            assert error["code"] == "conflict"
            assert error["message"] == f"campaign {campaign['id']} is draft: {says}"

        later = datetime.now(UTC) + timedelta(days=3)
        scheduled = admin.post(f"{path}/send", json={"send_at": later.isoformat()})
        assert scheduled.status_code == 202, scheduled.text
        assert scheduled.json()["status"] == "scheduled"
        stored = datetime.fromisoformat(scheduled.json()["send_at"])
        assert abs(stored - later) < timedelta(milliseconds=1)  # kept as epoch seconds
        for answer, says in (
            (admin.patch(path, json={"subject": "Changed"}), "only a draft can be edited"),
            (admin.delete(path), "only a draft can be deleted; cancel it instead"),
        ):
            assert says in error_of(answer, 409)["message"]
        assert admin.get(path).json()["subject"] == campaign["subject"]

        paused = admin.post(f"{path}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json() == {
            "campaign": {**paused.json()["campaign"], "status": "paused"},
            "withdrawn": 0,
            "requeued": 0,
        }
        assert "body" not in paused.json()["campaign"]
        assert (
            "only a draft or a scheduled campaign can be started"
            in (error_of(admin.post(f"{path}/send"), 409)["message"])
        )
        cancelled = admin.post(f"{path}/cancel")
        assert cancelled.json()["campaign"]["status"] == "cancelled"
        assert cancelled.json()["campaign"]["finished_at"] is not None
        assert error_of(admin.post(f"{path}/cancel"), 409)["message"] == (
            f"campaign {campaign['id']} is cancelled: it cannot be cancelled"
        )
        copy = admin.post(f"{path}/duplicate").json()
        assert (copy["status"], copy["duplicated_from"]) == ("draft", campaign["id"])


def test_send_at_must_be_aware_and_the_timeline_a_sane_bucket(served: Served) -> None:
    audience = served.new_list(0)
    with served.admin() as admin:
        campaign = created(admin, audience)
        path = f"/api/v1/campaigns/{campaign['id']}"
        for send_at in ("2030-01-01T09:00:00", "tomorrow", "9999-12-31T23:59:59-23:59"):
            error = error_of(admin.post(f"{path}/send", json={"send_at": send_at}), 422)
            assert error["field"] == "send_at"
        assert admin.get(path).json()["status"] == "draft"
        for bucket in ("59", "0", "-3600", "31622401", "x"):
            error = error_of(admin.get(f"{path}/stats", params={"timeline": bucket}), 422)
            assert error["field"] == "timeline"


def test_a_list_deleted_under_a_draft_makes_its_send_a_409(served: Served) -> None:
    audience = served.new_list(0)
    with served.admin() as admin:
        campaign = created(admin, audience)
        with served.engine.begin() as connection:
            connection.execute(
                mailing_lists.delete().where(mailing_lists.c.name == audience.removeprefix("list:"))
            )
        answer = admin.post(f"/api/v1/campaigns/{campaign['id']}/send")
        error = error_of(answer, 409)
        assert error["message"].startswith("there is no mailing list")
        assert error["field"] is None


# -- tests, sending, results ------------------------------------------------------------------


def test_a_test_send_goes_to_the_addresses_as_a_contact_marked_as_a_test(served: Served) -> None:
    audience = served.new_list(4)
    with served.admin() as admin:
        campaign = created(admin, audience, subject="Tested {{ contact.name }}")
        path = f"/api/v1/campaigns/{campaign['id']}/test"
        for body, field in (
            ({"to": []}, "to"),
            ({"to": ["qa@example.com"] * 21}, "to"),
            ({"to": ["qa@example.com", "not an address"]}, "to[1]"),
            ({"to": ["qa@example.com"], "as_contact": "stranger@example.com"}, "as_contact"),
            ({"to": ["qa@example.com"], "as_contact": "nonsense"}, "as_contact"),
        ):
            assert error_of(admin.post(path, json=body), 422)["field"] == field, body
        to = ["QA@example.com", "Boss <boss@example.com>"]
        answer = admin.post(path, json={"to": to, "as_contact": "reader3@example.com"})
        assert answer.status_code == 202, answer.text
        ids = answer.json()["outbox_ids"]
        assert len(ids) == 2
        wait_for(lambda: len(captured(admin, "[Test] Tested Reader 3")) == 2)
        got = captured(admin, "[Test] Tested Reader 3")
        assert sorted(r for item in got for r in item["recipients"]) == [
            "boss@example.com",
            "qa@example.com",
        ]
        message = raw(admin, got[0]["id"])
        assert "Hello Reader 3, you are on pro." in (html_part(message) or "")
        assert POSTAL in (html_part(message) or "")
        # Not in the ledger: nobody on the list counts as sent it.
        assert stats(admin, campaign["id"])["recipients"]["total"] == 0
        assert admin.get(f"/api/v1/campaigns/{campaign['id']}").json()["status"] == "draft"


def test_a_scheduled_campaign_is_started_by_the_embedded_worker_when_due(served: Served) -> None:
    audience = served.new_list(5)
    with served.admin() as admin:
        campaign = created(admin, audience, subject="Scheduled for {{ contact.name }}")
        soon = datetime.now(UTC) + timedelta(seconds=2)
        answer = admin.post(
            f"/api/v1/campaigns/{campaign['id']}/send", json={"send_at": soon.isoformat()}
        )
        assert answer.json()["status"] == "scheduled"
        assert stats(admin, campaign["id"])["recipients"]["total"] == 0
        wait_for(lambda: stats(admin, campaign["id"])["status"] == "finished")
        assert stats(admin, campaign["id"])["recipients"]["sent"] == 5
        started = admin.get(f"/api/v1/campaigns/{campaign['id']}").json()["started_at"]
        assert datetime.fromisoformat(started) >= soon - timedelta(seconds=1)


def tracking_tokens(message: EmailMessage) -> tuple[str, list[str]]:
    """The message's open-pixel path and its tracked links' paths, in order."""
    document = lxml.html.document_fromstring(html_part(message) or "")
    (pixel,) = [
        src for img in document.iter("img") if (src := img.get("src") or "").startswith(PUBLIC)
    ]
    links = [h for a in document.iter("a") if (h := a.get("href") or "").startswith(f"{PUBLIC}/c/")]
    return pixel.removeprefix(PUBLIC), [link.removeprefix(PUBLIC) for link in links]


def test_create_test_send_and_read_the_results_over_http(served: Served) -> None:
    size = 30
    audience = served.new_list(size)
    with served.admin() as admin, served.api.client() as reader:
        campaign = created(admin, audience, subject="Flow for {{ contact.name }}")
        campaign_id = campaign["id"]
        tested = admin.post(
            f"/api/v1/campaigns/{campaign_id}/test", json={"to": ["qa@acme.example"]}
        )
        assert tested.status_code == 202

        sent = admin.post(f"/api/v1/campaigns/{campaign_id}/send")
        assert sent.status_code == 202, sent.text
        assert sent.json()["status"] == "sending"
        assert sent.json()["started_at"] is not None
        wait_for(lambda: stats(admin, campaign_id)["status"] == "finished")

        results = stats(admin, campaign_id, timeline=60)
        assert results["recipients"] == {
            "pending": 0, "queued": 0, "sent": size, "failed": 0, "suppressed": 0,
            "skipped": 0, "total": size,
        }  # fmt: skip
        assert results["fanout_done"] is True
        assert sum(point["sent"] for point in results["timeline"]) == size
        # Every reader got it once; the test went only to qa@ (not counted above).
        delivered = captured(admin, "Flow for Reader")
        # Each send in the bucket its time falls in (the messages' own event logs say when).
        buckets: Counter[float] = Counter()
        for item in delivered:
            if item["recipients"] != ["qa@acme.example"]:
                events = admin.get(f"/api/v1/messages/{item['message_pk']}").json()["events"]
                (at,) = [datetime.fromisoformat(e["at"]) for e in events if e["type"] == "sent"]
                buckets[at.timestamp() // 60 * 60] += 1
        assert {
            datetime.fromisoformat(point["at"]).timestamp(): point["sent"]
            for point in results["timeline"]
        } == dict(buckets)
        by_recipient = Counter(r for item in delivered for r in item["recipients"])
        assert by_recipient == Counter(
            {f"reader{n}@example.com": 1 for n in range(size)} | {"qa@acme.example": 1}
        )
        mail = {
            item["recipients"][0]: raw(admin, item["id"])
            for item in delivered
            if item["recipients"][0] in {f"reader{n}@example.com" for n in (0, 1, 2)}
        }
        first, second, third = (mail[f"reader{n}@example.com"] for n in (0, 1, 2))
        assert first["Subject"] == "Flow for Reader 0"
        assert first["Precedence"] == "bulk"
        assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # As if the readers came back a minute later: a click within SCANNER_CLICK_SECONDS
        # of delivery is taken for a link scanner's (mailroom.tracking.labels).
        with served.engine.begin() as connection:
            connection.execute(
                update(messages)
                .where(
                    messages.c.id.in_(
                        select(campaign_recipients.c.message_pk).where(
                            campaign_recipients.c.campaign_id == campaign_id
                        )
                    )
                )
                .values(sent_at=messages.c.sent_at - 6 * SCANNER_CLICK_SECONDS)
            )

        person = {"User-Agent": FIREFOX}
        (pixel0, links0), (pixel1, links1), (pixel2, links2) = (
            tracking_tokens(m) for m in (first, second, third)
        )
        assert len(links0) == 2
        hits = [
            reader.get(pixel0, headers=person),
            reader.get(pixel0, headers=person),
            reader.get(pixel1, headers=person),
            reader.get(pixel2, headers={"User-Agent": GMAIL_PROXY}),  # Gmail's proxy
        ]
        assert all(h.status_code == 200 and h.headers["content-type"] == "image/gif" for h in hits)
        clicks = [
            reader.get(links0[0], headers=person),
            reader.get(links0[0], headers=person),
            reader.get(links0[1], headers=person),
            reader.get(links1[0], headers=person),
            reader.get(links2[1], headers={"User-Agent": "Mimecast link protection"}),
        ]
        assert [c.headers.get("location") for c in clicks] == [
            "https://example.com/read", "https://example.com/read", "https://example.com/shop",
            "https://example.com/read", "https://example.com/shop",
        ]  # fmt: skip

        def tracked() -> bool:
            now = stats(admin, campaign_id)
            opens: int = now["opens"]["total"] + now["proxy_opens"]["total"]
            scanned = sum(link["scanner"] for link in now["clicks"]["links"])
            return opens == 4 and now["clicks"]["total"] + scanned == 5

        wait_for(tracked, timeout=15)  # the hit writer flushes every second
        results = stats(admin, campaign_id)
    assert results["opens"] == {"total": 3, "unique": 2}
    assert results["proxy_opens"] == {"total": 1, "unique": 1}
    assert results["clicks"] == {
        "total": 4,
        "unique": 2,  # readers 0 and 1: people who clicked, whatever the link
        "links": [
            {"link_index": 0, "total": 3, "unique": 2, "scanner": 0},
            {"link_index": 1, "total": 1, "unique": 1, "scanner": 1},
        ],
    }
    assert results["recipients"]["sent"] == size
    assert (results["bounced"], results["complained"]) == (0, 0)


def test_pause_withdraws_waiting_mail_resume_finishes_and_retry_has_nothing(
    served: Served,
) -> None:
    size = 60
    audience = served.new_list(size)
    with served.admin() as admin:
        campaign = created(admin, audience, subject="Paused for {{ contact.name }}")
        path = f"/api/v1/campaigns/{campaign['id']}"
        assert admin.post(f"{path}/send").status_code == 202
        wait_for(lambda: stats(admin, campaign["id"])["recipients"]["sent"] > 0)
        paused = admin.post(f"{path}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["campaign"]["status"] == "paused"
        # Those of the CAMPAIGN_QUEUE_AHEAD queued that no worker held yet (how many it had
        # claimed at that instant is the worker's timing).
        assert 0 <= paused.json()["withdrawn"] <= 20
        # What the worker held goes; then nothing more until the resume.
        wait_for(lambda: stats(admin, campaign["id"])["recipients"]["queued"] == 0)
        at_pause = stats(admin, campaign["id"])
        time.sleep(1.5)
        assert stats(admin, campaign["id"]) == at_pause
        assert at_pause["status"] == "paused"
        assert at_pause["recipients"]["sent"] < size
        assert at_pause["recipients"]["pending"] > 0

        resumed = admin.post(f"{path}/resume")
        assert resumed.json()["campaign"]["status"] == "sending"
        wait_for(lambda: stats(admin, campaign["id"])["status"] == "finished")
        assert stats(admin, campaign["id"])["recipients"]["sent"] == size
        delivered = captured(admin, "Paused for Reader")
        assert Counter(r for item in delivered for r in item["recipients"]) == Counter(
            {f"reader{n}@example.com": 1 for n in range(size)}
        )
        retried = admin.post(f"{path}/retry-failed")
        assert retried.status_code == 200, retried.text
        assert retried.json()["requeued"] == 0
        assert retried.json()["campaign"]["status"] == "finished"


def test_cancel_stops_for_good(served: Served) -> None:
    size = 60
    audience = served.new_list(size)
    with served.admin() as admin:
        campaign = created(admin, audience, subject="Cancelled for {{ contact.name }}")
        path = f"/api/v1/campaigns/{campaign['id']}"
        assert admin.post(f"{path}/send").status_code == 202
        wait_for(lambda: stats(admin, campaign["id"])["recipients"]["sent"] > 0)
        cancelled = admin.post(f"{path}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["campaign"]["status"] == "cancelled"
        # What a worker held at the cancel is sent (it may have been on the wire); nothing
        # else ever is, however many runner steps and polls come after.
        wait_for(lambda: stats(admin, campaign["id"])["recipients"]["queued"] == 0)
        time.sleep(1.5)
        counts = stats(admin, campaign["id"])["recipients"]
        assert counts["pending"] == 0
        assert counts["sent"] + counts["skipped"] == counts["total"] <= size
        assert counts["skipped"] > 0
        assert counts["sent"] < size
        delivered = captured(admin, "Cancelled for Reader")
        assert sum(len(item["recipients"]) for item in delivered) == counts["sent"]
        assert stats(admin, campaign["id"])["status"] == "cancelled"
        assert "only a draft or a scheduled" in error_of(admin.post(f"{path}/send"), 409)["message"]


# -- a service without the postal address -----------------------------------------------------


def test_sending_without_the_postal_address_is_a_409_naming_the_setting(
    service: ApiService,
) -> None:
    """The plain API service (support.api_service) has no ORGANIZATION_POSTAL_ADDRESS."""
    engine = create_outbox_engine(load_settings(environ=service.env).DATABASE_URL)
    try:
        make_list(engine, "postal", 2)
    finally:
        engine.dispose()
    with service.client(service.admin_key) as admin:
        campaign = created(admin, "list:postal")
        path = f"/api/v1/campaigns/{campaign['id']}"
        for answer in (
            admin.post(f"{path}/send"),
            admin.post(f"{path}/test", json={"to": ["qa@example.com"]}),
        ):
            error = error_of(answer, 409)
            assert error["code"] == "not_configured"
            assert error["message"].startswith("ORGANIZATION_POSTAL_ADDRESS: ")
            assert "CAN-SPAM" in error["message"]
            assert answer.json()["setting"] == "ORGANIZATION_POSTAL_ADDRESS"
        assert admin.get(path).json()["status"] == "draft"


def test_the_openapi_document_describes_the_campaign_routes(served: Served) -> None:
    with served.api.client() as anyone:
        document = anyone.get("/api/v1/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/api/v1/campaigns"]) == {"get", "post"}
    assert set(paths["/api/v1/campaigns/{campaign_id}"]) == {"get", "patch", "delete"}
    for action in ("duplicate", "test", "send", "pause", "resume", "cancel", "retry-failed"):
        assert set(paths[f"/api/v1/campaigns/{{campaign_id}}/{action}"]) == {"post"}
    stats_route = paths["/api/v1/campaigns/{campaign_id}/stats"]["get"]
    assert [p["name"] for p in stats_route["parameters"]] == ["campaign_id", "timeline"]
    assert re.search(r"\bdrift\b", stats_route["description"])
