"""The admin's messages pages against a real ``mailroom serve``: signed in over HTTP with the
first admin's password, list and filter, a message's page, its HTML preview's CSP, and retry
and cancel, which need the session's CSRF token."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from support.service import ServiceProcess

PASSWORD = "a long admin password for tests"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    url = f"sqlite:///{tmp_path / 'mailroom.db'}"
    outbox = Outbox(load_settings(environ={"DATABASE_URL": url}))
    database.upgrade(outbox.engine)
    outbox.send(
        to=["ada@example.com"],
        subject="Your invoice <b>42</b>",
        text="Plain words",
        html="<p>Hello</p><script>document.title='ran'</script>",
        metadata={"notification_type": "invoice"},
    )
    outbox.send(to=["grace@example.com"], subject="Weekly digest", text="Digest", stream="bulk")
    outbox.dispose()
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": "messages-pages-secret-key-0123456789",
        "MAILROOM_ADMIN_PASSWORD": PASSWORD,
        "MAILROOM_TRANSPORT": "capture",
    }
    # No worker: the messages stay queued, so cancel applies.
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as running:
        yield running


@contextmanager
def signed_in(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, follow_redirects=False, timeout=10) as client:
        yield log_in(client)


def log_in(client: httpx.Client) -> httpx.Client:
    form = client.get("/admin/login")
    token = _CSRF.search(form.text)
    assert token is not None
    answer = client.post(
        "/admin/login",
        data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert answer.status_code == 303, answer.text
    return client


def test_the_list_needs_a_session(service: ServiceProcess) -> None:
    answer = httpx.get(f"{service.url}/admin/messages", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login")


def test_list_filter_and_pages(service: ServiceProcess) -> None:
    with signed_in(service) as client:
        page = client.get("/admin/messages")
        assert page.status_code == 200
        assert "Your invoice &lt;b&gt;42&lt;/b&gt;" in page.text  # escaped, never markup
        assert "Weekly digest" in page.text
        assert 'class="badge badge-queued"' in page.text
        for query, shown, hidden in [
            ({"recipient": "ADA@example.com"}, "Your invoice", "Weekly digest"),
            ({"subject": "digest"}, "Weekly digest", "Your invoice"),
            ({"stream": "bulk"}, "Weekly digest", "Your invoice"),
            ({"type": "invoice"}, "Your invoice", "Weekly digest"),
            ({"status": "queued"}, "Weekly digest", "No messages match"),
        ]:
            found = client.get("/admin/messages", params=query)
            assert found.status_code == 200
            assert shown in found.text, query
            assert hidden not in found.text, query
        empty = client.get("/admin/messages", params={"status": "failed"})
        assert "No messages match" in empty.text
        tampered = client.get("/admin/messages", params={"cursor": "bm90IGEgY3Vyc29y"})
        assert tampered.status_code == 400
        assert "not valid" in tampered.text
        too_big = base64.urlsafe_b64encode(b"[1e9,9223372036854775808]").decode()
        assert client.get("/admin/messages", params={"cursor": too_big}).status_code == 400
        bad_date = client.get("/admin/messages", params={"from": "yesterday"})
        assert bad_date.status_code == 400
        assert "YYYY-MM-DD" in bad_date.text


def first_id(client: httpx.Client, subject: str) -> int:
    page = client.get("/admin/messages", params={"subject": subject})
    found = re.search(r'href="/admin/messages/(\d+)"', page.text)
    assert found is not None
    return int(found.group(1))


def test_a_message_page_and_its_sandboxed_html(service: ServiceProcess) -> None:
    with signed_in(service) as client:
        pk = first_id(client, "invoice")
        page = client.get(f"/admin/messages/{pk}")
        assert page.status_code == 200
        assert f'<iframe class="message-preview" sandbox="" src="/admin/messages/{pk}/html"' in (
            page.text
        )
        assert "<script>document.title" not in page.text  # only escaped, in the source
        assert "Plain words" in page.text
        assert 'class="source"' in page.text
        assert "queued" in page.text  # its queued event
        assert "ada@example.com" in page.text
        html = client.get(f"/admin/messages/{pk}/html")
        assert html.status_code == 200
        assert html.headers["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
            "base-uri 'none'; frame-ancestors 'self'; sandbox"
        )
        assert html.headers["x-content-type-options"] == "nosniff"
        assert "<p>Hello</p>" in html.text
        assert client.get("/admin/messages/999999").status_code == 404
        assert httpx.get(f"{service.url}/admin/messages/{pk}/html").status_code in (303, 401)


def test_cancel_then_retry_need_the_csrf_token(service: ServiceProcess) -> None:
    with signed_in(service) as client:
        pk = first_id(client, "digest")
        page = client.get(f"/admin/messages/{pk}")
        assert f"/admin/messages/{pk}/cancel" in page.text
        assert f"/admin/messages/{pk}/retry" not in page.text  # queued: nothing to retry
        token = _CSRF.search(page.text)
        assert token is not None
        refused = client.post(f"/admin/messages/{pk}/cancel", data={})
        assert refused.status_code == 403
        assert "badge-queued" in client.get(f"/admin/messages/{pk}").text
        cancelled = client.post(f"/admin/messages/{pk}/cancel", data={"csrf_token": token.group(1)})
        assert cancelled.status_code == 303
        assert cancelled.headers["location"] == f"/admin/messages/{pk}"
        after = client.get(f"/admin/messages/{pk}")
        assert "badge-cancelled" in after.text
        assert "Cancelled: it will not be sent." in after.text
        assert f"/admin/messages/{pk}/retry" in after.text
        retried = client.post(f"/admin/messages/{pk}/retry", data={"csrf_token": token.group(1)})
        assert retried.status_code == 303
        assert "badge-queued" in client.get(f"/admin/messages/{pk}").text
