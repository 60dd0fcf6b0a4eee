"""The Captured mail pages against a real ``mailroom serve``: the inbox (newest first, search,
keyset pages), one message's tabs, its HTML only in a sandboxed iframe under its own CSP,
the .eml, delete one and all (CSRF checked), and the JSON the page polls for new mail."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import closing
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import delete

from mailroom.outbox.capture_queries import store_captured
from mailroom.outbox.schema import captured
from mailroom.outbox.store import Outbox
from support.admin_service import AdminService, csrf_token, running_admin_service, table_rows

PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox"
)
HOSTILE_HTML = (
    '<html><body><h1>Hello Ada</h1><script>document.title="ran"</script>'
    '<img src="https://tracker.example/p.gif"></body></html>'
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminService]:
    with running_admin_service(tmp_path_factory.mktemp("captured")) as running:
        yield running
    assert running.process.watch.checked > 0


@pytest.fixture
def admin(service: AdminService) -> Iterator[httpx.Client]:
    with service.engine.begin() as connection:
        connection.execute(delete(captured))
    with closing(service.signed_in()) as client:
        yield client


def capture(
    service: AdminService,
    subject: str,
    *,
    to: str = "ada@example.com",
    sender: str = "app@acme.example",
    html_body: str | None = HOSTILE_HTML,
) -> tuple[int, bytes]:
    """Keep a message as the capture transport does; its id and bytes."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.monotonic_ns()}@acme.example>"
    message.set_content(f"Plain text of {subject}\n")
    if html_body is not None:
        message.add_alternative(html_body, subtype="html")
    data = message.as_bytes()
    with service.engine.begin() as connection:
        new_id = store_captured(
            connection,
            message_pk=None,
            message_id=message["Message-ID"],
            mail_from=sender,
            recipients=[to],
            subject=subject,
            data=data,
            now=time.time(),
            keep=1000,
        )
    return new_id, data


def subjects_listed(page: str) -> list[str]:
    return [row[0] for row in table_rows(page, "captured-list")]


def test_every_page_and_the_json_need_a_session(service: AdminService) -> None:
    ident, _ = capture(service, "Private")
    with service.client() as anonymous:
        for path in (
            "/admin/captured",
            f"/admin/captured/{ident}",
            f"/admin/captured/{ident}/html",
            f"/admin/captured/{ident}/download",
        ):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login?next=/admin/captured")
        latest = anonymous.get("/admin/api/captured/latest", params={"after": 0})
        assert latest.status_code == 401
        assert "Private" not in latest.text


def test_the_inbox_lists_newest_first_and_searches(
    service: AdminService, admin: httpx.Client
) -> None:
    capture(service, "Welcome aboard", to="ada@example.com")
    capture(service, "Your invoice", to="bob@example.com", sender="billing@acme.example")
    capture(service, "Password reset", to="carol@example.com")
    page = admin.get("/admin/captured")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert subjects_listed(page.text) == ["Password reset", "Your invoice", "Welcome aboard"]
    assert 'data-latest-url="/admin/api/captured/latest"' in page.text
    assert "/admin/static/captured.js" in page.text
    # Without the script the page still works: a plain link shows what arrived since.
    assert '<a href="/admin/captured" data-refresh-link>Refresh</a>' in page.text

    def found(q: str) -> list[str]:
        return subjects_listed(admin.get("/admin/captured", params={"q": q}).text)

    assert found("BOB@example") == ["Your invoice"]  # a recipient, any case
    assert found("billing@") == ["Your invoice"]  # the sender
    assert found("reset") == ["Password reset"]  # the subject
    empty = admin.get("/admin/captured", params={"q": "nobody at all"})
    assert "No captured message matches" in empty.text


def test_the_inbox_pages_by_id(service: AdminService, admin: httpx.Client) -> None:
    for n in range(53):
        capture(service, f"Note {n:02d}", html_body=None)
    first = admin.get("/admin/captured").text
    assert subjects_listed(first) == [f"Note {n:02d}" for n in range(52, 2, -1)]
    older = first.split('href="/admin/captured?before=', 1)[1].split('"', 1)[0]
    second = admin.get(f"/admin/captured?before={older}").text
    assert subjects_listed(second) == ["Note 02", "Note 01", "Note 00"]
    assert "?before=" not in second  # the last page
    assert "data-latest-url" not in second  # an older page does not follow new mail


def test_a_message_has_tabs_and_its_html_only_in_a_sandbox(
    service: AdminService, admin: httpx.Client
) -> None:
    ident, data = capture(service, "Tabs <b>bold</b>")
    page = admin.get(f"/admin/captured/{ident}")
    assert page.status_code == 200
    assert '<iframe class="message-preview" sandbox=""' in page.text
    assert f'src="/admin/captured/{ident}/html"' in page.text
    current = re.findall(r'<a href="([^"]+)" aria-current="page">(\w+)</a>', page.text)
    assert (f"/admin/captured/{ident}?tab=html", "HTML") in current
    # The message's markup is never part of the admin page itself.
    assert "<script>" not in page.text
    assert "Tabs &lt;b&gt;bold&lt;/b&gt;" in page.text

    preview = admin.get(f"/admin/captured/{ident}/html")
    assert preview.status_code == 200
    assert preview.headers["content-security-policy"] == PREVIEW_CSP
    assert preview.headers["x-content-type-options"] == "nosniff"
    assert preview.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>Hello Ada</h1>" in preview.text

    text = admin.get(f"/admin/captured/{ident}", params={"tab": "text"}).text
    assert (f"/admin/captured/{ident}?tab=text", "Text") in re.findall(
        r'<a href="([^"]+)" aria-current="page">(\w+)</a>', text
    )
    assert "Plain text of Tabs &lt;b&gt;bold&lt;/b&gt;" in text
    assert "<iframe" not in text
    headers = admin.get(f"/admin/captured/{ident}", params={"tab": "headers"}).text
    assert ["Subject", "Tabs <b>bold</b>"] in table_rows(headers, "captured-headers")
    raw = admin.get(f"/admin/captured/{ident}", params={"tab": "raw"}).text
    assert "Content-Type: multipart/alternative" in raw
    assert "&lt;script&gt;" in raw  # the source shown as text, escaped

    download = admin.get(f"/admin/captured/{ident}/download")
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "message/rfc822"
    assert download.headers["content-disposition"] == f'attachment; filename="captured-{ident}.eml"'


def test_a_message_without_html_opens_on_its_text(
    service: AdminService, admin: httpx.Client
) -> None:
    ident, _ = capture(service, "Plain only", html_body=None)
    page = admin.get(f"/admin/captured/{ident}").text
    assert "<iframe" not in page
    assert "Plain text of Plain only" in page
    assert admin.get(f"/admin/captured/{ident}/html").status_code == 404
    assert admin.get("/admin/captured/999999999").status_code == 404


def test_the_latest_json_holds_only_newer_mail(service: AdminService, admin: httpx.Client) -> None:
    seen, _ = capture(service, "Already shown")
    newer = [capture(service, f"New {n}", to=f"n{n}@example.com")[0] for n in range(3)]
    answer = admin.get("/admin/api/captured/latest", params={"after": seen})
    assert answer.status_code == 200
    body = answer.json()
    assert [item["id"] for item in body["items"]] == newer[::-1]
    assert body["more"] is False
    assert body["items"][0]["subject"] == "New 2"
    assert body["items"][0]["recipients"] == ["n2@example.com"]
    assert body["items"][0]["size"].endswith((" B", " KB"))  # shown as the page shows it
    assert body["items"][0]["captured_at"].endswith(" UTC")
    searched = admin.get("/admin/api/captured/latest", params={"after": seen, "q": "n1@"})
    assert [item["id"] for item in searched.json()["items"]] == [newer[1]]
    nothing = admin.get("/admin/api/captured/latest", params={"after": newer[-1]})
    assert nothing.json() == {"items": [], "more": False}


def test_mail_sent_through_the_outbox_arrives_for_the_watcher(
    service: AdminService, admin: httpx.Client
) -> None:
    """The whole way: a message enqueued as an application would, delivered by the service's
    worker into capture, then seen by the page's poll."""
    capture(service, "Before")
    shown = admin.get("/admin/captured").text
    after = shown.split('data-after="', 1)[1].split('"', 1)[0]
    outbox = Outbox(service.settings, engine=service.engine)
    outbox.send(to=["watcher@example.com"], subject="Arrives live", text="Hello")
    deadline = time.monotonic() + 20
    while True:
        items = admin.get("/admin/api/captured/latest", params={"after": after}).json()["items"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [item["subject"] for item in items] == ["Arrives live"]
    assert items[0]["recipients"] == ["watcher@example.com"]


def test_delete_one_and_all_need_the_csrf_token(service: AdminService, admin: httpx.Client) -> None:
    first, _ = capture(service, "First")
    second, _ = capture(service, "Second")
    token = csrf_token(admin.get("/admin/captured").text)

    refused = admin.post(f"/admin/captured/{first}/delete", data={})
    assert refused.status_code == 403
    wrong = admin.post(f"/admin/captured/{first}/delete", data={"csrf_token": "x" * 40})
    assert wrong.status_code == 403
    assert admin.get(f"/admin/captured/{first}").status_code == 200

    deleted = admin.post(f"/admin/captured/{first}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/captured"
    after = admin.get("/admin/captured").text  # the notice is shown by the next page
    assert f"Deleted captured message {first}." in after
    assert subjects_listed(after) == ["Second"]
    assert admin.get(f"/admin/captured/{first}").status_code == 404

    assert admin.post("/admin/captured/delete-all", data={}).status_code == 403
    assert admin.get(f"/admin/captured/{second}").status_code == 200
    emptied = admin.post("/admin/captured/delete-all", data={"csrf_token": token})
    assert emptied.status_code == 303
    page = admin.get("/admin/captured").text
    assert "Deleted every captured message (1)." in page
    assert "Nothing captured yet." in page


def test_a_paging_id_past_bigint_is_refused_not_an_error(admin: httpx.Client) -> None:
    too_big = str(2**63)
    assert admin.get("/admin/captured", params={"before": too_big}).status_code == 422
    latest = admin.get("/admin/api/captured/latest", params={"after": too_big})
    assert latest.status_code == 422
