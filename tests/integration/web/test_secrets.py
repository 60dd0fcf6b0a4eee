"""No answer, page, metric or log line of ``mailroom serve`` holds the SMTP password, the
``SECRET_KEY`` or an API key: one real service at full verbosity (``-vv``: the access log
and the debug log), relaying through a real SMTP server that makes it log in, hit on every
route family with good and bad input. Every answer (status, headers, body) is checked by
the client's hook, and the process's whole output when it stops (:mod:`support.service`).
"""

from __future__ import annotations

import base64
import re
import time
from email.message import EmailMessage
from pathlib import Path

import lxml.html

from mailroom.access.apikeys import create_api_key
from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import ApiKeyScope, Status
from support.mail_checks import html_part, parse
from support.service import ServiceProcess
from support.smtp_server import TEST_PASSWORD, TEST_USER, ScriptedHandler, ServerFactory
from support.tls_files import TLSFiles

PUBLIC = "https://mail.acme.example"
SECRET_KEY = "serve-secret-key-that-must-never-show-" + "0123456789abcdef"

SETTINGS = """\
DATABASE_URL = "{database_url}"
DEFAULT_FROM_EMAIL = "Acme <noreply@acme.example>"
EMAIL_TEMPLATE_DIRS = ["{templates}"]
WORKER_POLL_INTERVAL = 0.05
API_MAX_BATCH_SIZE = 3
API_MAX_BODY_BYTES = 20000

[notification_types."news.weekly"]
template = "news"
stream = "bulk"
description = "The weekly news"
"""


def encodings(secret: str) -> list[str]:
    """The secret as a log of the SMTP conversation would show it: AUTH PLAIN's and AUTH
    LOGIN's base64 (a secret must not leak encoded either)."""
    plain = base64.b64encode(f"\0{TEST_USER}\0{secret}".encode()).decode()
    login = base64.b64encode(secret.encode()).decode()
    return [plain, login]


def links(message: EmailMessage) -> tuple[str, str, str]:
    """The message's unsubscribe, pixel and (first) click path, on the service."""
    header = str(message["List-Unsubscribe"])
    unsubscribe = re.search(rf"<{re.escape(PUBLIC)}(/unsubscribe/[^>]+)>", header)
    assert unsubscribe, header
    document = lxml.html.document_fromstring(html_part(message) or "")
    (pixel,) = [
        src.removeprefix(PUBLIC)
        for img in document.iter("img")
        if (src := img.get("src") or "").startswith(f"{PUBLIC}/trck/")
    ]
    click = next(
        href.removeprefix(PUBLIC)
        for a in document.iter("a")
        if (href := a.get("href") or "").startswith(f"{PUBLIC}/c/")
    )
    return unsubscribe.group(1), pixel, click


def altered(path: str) -> str:
    """The path with a character of its token's signature changed: a bad token. Not the last
    character: its low bits are base64's padding, and some changes to it decode the same."""
    return path[:-4] + ("A" if path[-4] != "A" else "Q") + path[-3:]


def test_no_answer_metric_or_log_line_holds_a_secret(
    tmp_path: Path, smtp_server_factory: ServerFactory, tls: TLSFiles
) -> None:
    handler = ScriptedHandler()
    relay = smtp_server_factory("starttls", auth=True, auth_required=True, handler=handler)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "news.subject.txt").write_text("News for {{ recipient.name }}")
    (templates / "news.html").write_text(
        '<html><body><p>Hello.</p><p><a href="https://blog.example/post">Read</a></p></body></html>'
    )
    database_url = f"sqlite:///{tmp_path / 'mailroom.db'}"
    config = tmp_path / "mailroom.toml"
    config.write_text(SETTINGS.format(database_url=database_url, templates=templates))
    env = {
        "MAILROOM_CONFIG": str(config),
        "SECRET_KEY": SECRET_KEY,
        "PUBLIC_BASE_URL": PUBLIC,
        "TRACK_OPENS": "bulk",
        "TRACK_CLICKS": "bulk",
        "MAILROOM_TRANSPORT": "smtp",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(relay.port),
        "EMAIL_USE_TLS": "true",
        "EMAIL_SSL_CAFILE": str(tls.ca_path),
        "EMAIL_HOST_USER": TEST_USER,
        "EMAIL_HOST_PASSWORD": TEST_PASSWORD,
    }
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    with outbox.engine.begin() as connection:
        _, admin_key = create_api_key(
            connection, name="admin", scope=ApiKeyScope.ADMIN, now=time.time()
        )
        _, send_key = create_api_key(
            connection, name="app", scope=ApiKeyScope.SEND, now=time.time()
        )

    try:
        with ServiceProcess(env, cwd=tmp_path, global_args=["-vv"]) as service:
            watch = service.watch
            for secret in (admin_key, send_key):
                watch.add(secret)
            for secret in encodings(TEST_PASSWORD):
                watch.add(secret)
            assert {SECRET_KEY, TEST_PASSWORD} <= set(watch.secrets)  # from its settings
            checked_before = watch.checked
            statuses: dict[str, int] = {}

            with service.client(send_key) as app, service.client(admin_key) as admin:
                # The API: what works...
                sent = app.post(
                    "/api/v1/messages",
                    json={"to": ["ada@example.com"], "subject": "Hi", "text": "Hello"},
                )
                assert sent.status_code == 201, sent.text
                batch = app.post(
                    "/api/v1/messages/batch",
                    json={"messages": [{"to": ["b@example.com"]}, {"to": ["c@example.com"]}]},
                )
                assert batch.status_code == 201, batch.text
                notified = app.post(
                    "/api/v1/notifications",
                    json={"type": "news.weekly", "to": ["Dora <dora@example.com>"]},
                )
                assert notified.status_code == 201, notified.text
                (news_pk,) = notified.json()["outbox_ids"]
                for path in (
                    f"/api/v1/messages/{sent.json()['id']}",
                    "/api/v1/captured",
                    "/api/v1/suppressions",
                    "/api/v1/preferences/dora@example.com",
                    "/api/v1/status",
                    "/api/v1/openapi.json",
                    "/api/v1/docs",
                ):
                    answer = admin.get(path)
                    assert answer.status_code == 200, (path, answer.text)
                added = admin.post("/api/v1/suppressions", json={"address": "gone@example.com"})
                assert added.status_code == 201, added.text
                changed = admin.put(
                    "/api/v1/preferences/dora@example.com", json={"types": {"news.weekly": True}}
                )
                assert changed.status_code == 200, changed.text
                removed = admin.delete("/api/v1/suppressions/gone@example.com")
                assert removed.status_code == 200, removed.text
                later = app.post(
                    "/api/v1/messages",
                    json={"to": ["e@example.com"], "send_at": "2999-01-01T00:00:00Z"},
                ).json()["id"]
                cancelled = app.post(f"/api/v1/messages/{later}/cancel")
                assert cancelled.status_code == 200, cancelled.text
                statuses["409"] = app.post(f"/api/v1/messages/{later}/cancel").status_code
                # ... and every error family.
                with service.client() as anonymous, service.client(altered(send_key)) as forged:
                    statuses["401 no key"] = anonymous.get("/api/v1/status").status_code
                    statuses["401 bad key"] = forged.post(
                        "/api/v1/messages", json={"to": ["x@example.com"]}
                    ).status_code
                statuses["403"] = app.post(
                    "/api/v1/suppressions", json={"address": "x@example.com"}
                ).status_code
                statuses["404 message"] = admin.get("/api/v1/messages/999999").status_code
                statuses["404 route"] = admin.get("/api/v1/nothing-here").status_code
                statuses["413 body"] = app.post(
                    "/api/v1/messages",
                    json={"to": ["x@example.com"], "text": "x" * 30000},
                ).status_code
                statuses["413 batch"] = app.post(
                    "/api/v1/messages/batch", json={"messages": [{"to": ["x@example.com"]}] * 4}
                ).status_code
                statuses["422"] = app.post(
                    "/api/v1/messages", json={"to": ["not an address"]}
                ).status_code

                deadline = time.monotonic() + 30
                while outbox.counts()[Status.SENT] < 4:
                    assert time.monotonic() < deadline, outbox.counts()
                    time.sleep(0.05)
                assert len(handler.auth_mechanisms_used) > 0  # it did log in with the password

            assert outbox.get(news_pk) is not None
            news = next(parse(r.data) for r in handler.received if b"dora@example.com" in r.data)
            unsubscribe, pixel, click = links(news)
            preferences = unsubscribe.replace("/unsubscribe/", "/preferences/", 1)

            with service.client(timeout=10.0, follow_redirects=False) as public:
                for name, path in (
                    ("unsubscribe", unsubscribe),
                    ("preferences", preferences),
                    ("pixel", pixel),
                    ("click", click),
                ):
                    statuses[f"GET {name}"] = public.get(path).status_code
                    statuses[f"GET bad {name}"] = public.get(altered(path)).status_code
                one_click = {"List-Unsubscribe": "One-Click"}
                statuses["POST bad unsubscribe"] = public.post(
                    altered(unsubscribe), data=one_click
                ).status_code
                statuses["POST bad preferences"] = public.post(
                    altered(preferences), data={"stop_all": "yes"}
                ).status_code
                statuses["POST unsubscribe"] = public.post(unsubscribe, data=one_click).status_code
                for path in ("/healthz", "/readyz"):
                    statuses[path] = public.get(path).status_code
                metrics = public.get("/metrics")
                statuses["/metrics"] = metrics.status_code
    finally:
        outbox.dispose()

    assert statuses == {
        "401 no key": 401,
        "401 bad key": 401,
        "403": 403,
        "404 message": 404,
        "404 route": 404,
        "413 body": 413,
        "413 batch": 413,
        "422": 422,
        "409": 409,
        "GET unsubscribe": 200,
        "GET bad unsubscribe": 404,
        "GET preferences": 200,
        "GET bad preferences": 404,
        "GET pixel": 200,
        "GET bad pixel": 200,  # the pixel never fails visibly
        "GET click": 302,
        "GET bad click": 404,
        "POST bad unsubscribe": 404,
        "POST bad preferences": 404,
        "POST unsubscribe": 200,
        "/healthz": 200,
        "/readyz": 200,
        "/metrics": 200,
    }
    # Every answer above went through the watch; the metrics and the output checked here
    # too, so this test fails on its own if the hooks were ever unplugged.
    assert watch.checked == checked_before + len(statuses) + 15
    for secret in [SECRET_KEY, TEST_PASSWORD, admin_key, send_key, *encodings(TEST_PASSWORD)]:
        assert secret not in metrics.text
        assert secret not in service.output
    assert 'GET /metrics HTTP/1.1" 200' in service.stderr  # the access log was on
    assert "Traceback" not in service.output
