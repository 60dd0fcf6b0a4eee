"""The Templates page against a real ``mailroom serve``: file and stored templates (which one
overrides which), the notification types with their last week's counts, the editor (create,
edit, delete, CSRF checked), its preview rendered in the notification sandbox (without a
script and through the script's endpoint), errors with their line, and the preview frame's
CSP."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from mailroom.access import create_user, list_users
from mailroom.outbox import notification_queries
from mailroom.outbox.schema import notification_log, templates
from support.admin_service import AdminService, csrf_token, running_admin_service, table_rows

TYPES = """\
EMAIL_TEMPLATE_DIRS = ["{folder}"]

[notification_types."task.assigned"]
template = "task_assigned"
description = "A task was assigned to you"

[notification_types."account.password_reset"]
template = "password_reset"
may_opt_out = false

[notification_types."digest.weekly"]
template = "digest"
stream = "bulk"
default_on = false
"""

PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
    "base-uri 'none'; frame-ancestors 'self'; sandbox"
)
_FRAME = re.compile(r'<iframe[^>]*\bsandbox=""[^>]*\bsrc="([^"]+)"')


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminService]:
    root = tmp_path_factory.mktemp("templates")
    folder = root / "mail"
    folder.mkdir()
    write(folder, "task_assigned.subject.txt", "{{ task }} is yours")
    write(folder, "task_assigned.html", "<p>Hello {{ recipient.name }}, {{ task }} is yours.</p>")
    write(folder, "task_assigned.txt", "Hello {{ recipient.name }}, {{ task }} is yours.")
    write(folder, "welcome.subject.txt", "Welcome")
    write(folder, "welcome.txt", "Welcome aboard.")
    with running_admin_service(root, TYPES.format(folder=folder)) as running:
        yield running
    assert running.process.watch.checked > 0


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture
def admin(service: AdminService) -> Iterator[httpx.Client]:
    with service.engine.begin() as connection:
        connection.execute(delete(templates))
        connection.execute(delete(notification_log))
    with closing(service.signed_in()) as client:
        yield client


def token_of(admin: httpx.Client) -> str:
    return csrf_token(admin.get("/admin/templates/new").text)


def form(token: str | None, **fields: str) -> dict[str, str]:
    values = {"mode": "new", "name": "", "subject": "", "html": "", "text": "", "context": "{}"}
    values.update(fields)
    if token is not None:
        values["csrf_token"] = token
    return values


def preview_errors(page: str) -> list[str]:
    box = re.search(r"data-preview-error-list>(.*?)</ul>", page, re.S)
    assert box is not None
    return [" ".join(html.unescape(i).split()) for i in re.findall(r"<li>(.*?)</li>", box[1], re.S)]


def frame_html(admin: httpx.Client, page: str) -> httpx.Response:
    found = _FRAME.search(page)
    assert found is not None, "no sandboxed preview frame with a source"
    return admin.get(html.unescape(found.group(1)))


def stored(service: AdminService, name: str) -> object:
    with service.engine.connect() as connection:
        return notification_queries.load_template(connection, name)


def test_the_pages_need_a_session(service: AdminService) -> None:
    with service.client() as anonymous:
        for path in ("/admin/templates", "/admin/templates/new", "/admin/templates/edit?name=a"):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login?next=")
        assert anonymous.post("/admin/api/templates/preview", data={}).status_code == 401


def test_the_list_shows_file_and_stored_templates(
    service: AdminService, admin: httpx.Client
) -> None:
    empty = admin.get("/admin/templates").text
    assert "No template is stored in the database" in empty
    with service.engine.begin() as connection:
        notification_queries.save_template(
            connection, "task_assigned", subject="Override", html=None, text="Hi", now=time.time()
        )
        notification_queries.save_template(
            connection, "digest", subject="Digest", html="<p>d</p>", text=None, now=time.time()
        )
    page = admin.get("/admin/templates").text
    assert [row[:4] for row in table_rows(page, "templates-stored")] == [
        ["digest", "Digest", "HTML", "no"],
        ["task_assigned", "Override", "text", "overrides file"],
    ]
    files = [row[:2] + row[3:4] for row in table_rows(page, "templates-files")]
    assert files == [
        ["task_assigned", "HTML + text", "overridden"],
        ["welcome", "text", "this file"],
    ]
    assert "/admin/templates/new?from=welcome" in page  # a file not overridden: "Override"


def test_the_notification_types_with_their_week(service: AdminService, admin: httpx.Client) -> None:
    now = time.time()

    def logged(kind: str, outcome: str, at: float) -> dict[str, object]:
        return {"at": at, "notification_type": kind, "recipient": "a@example.com",
                "outcome": outcome, "reason": None, "message_pk": None, "actor": None}  # fmt: skip

    with service.engine.begin() as connection:
        notification_queries.insert_notification_log(
            connection,
            [
                logged("task.assigned", "queued", now - 60),
                logged("task.assigned", "queued", now - 6 * 86400),
                logged("task.assigned", "queued", now - 8 * 86400),  # before the week
                logged("task.assigned", "skipped", now - 60),
                logged("task.assigned", "suppressed", now - 60),
                logged("account.password_reset", "queued", now - 60),
            ],
        )
        notification_queries.save_template(
            connection, "digest", subject="Digest", html="<p>d</p>", text=None, now=now
        )
    rows = table_rows(admin.get("/admin/templates").text, "notification-types")
    assert rows == [
        [
            "account.password_reset",
            "password_reset missing",
            "transactional",
            "on",
            "Always sent: recipients cannot turn it off",
            "1",
            "0",
            "settings file",
        ],
        [
            "digest.weekly",
            "digest",
            "bulk",
            "off",
            "Recipients may turn it off",
            "0",
            "0",
            "settings file",
        ],
        [
            "task.assigned A task was assigned to you",
            "task_assigned (file)",
            "transactional",
            "on",
            "Recipients may turn it off",
            "2",
            "2 (1 suppressed)",
            "settings file",
        ],
    ]


def test_create_preview_edit_and_delete(service: AdminService, admin: httpx.Client) -> None:
    token = token_of(admin)
    context = json.dumps({"who": "Ada", "recipient": {"name": "Ada"}})
    fields = {
        "name": "news/launch",
        "subject": "Hello {{ who }}",
        "html": "<style>p { color: red }</style><p>Launch day, {{ who }}!</p>",
        "context": context,
    }
    previewed = admin.post("/admin/templates/preview", data=form(token, **fields))
    assert previewed.status_code == 200
    assert preview_errors(previewed.text) == []
    assert '<p class="preview-subject" data-preview-subject>Hello Ada</p>' in previewed.text
    assert "Launch day, Ada!" in html.unescape(previewed.text)  # the text made from the HTML
    frame = frame_html(admin, previewed.text)
    assert frame.status_code == 200
    assert '<p style="color: red;">Launch day, Ada!</p>' in frame.text  # CSS inlined, as sent

    changed = admin.post(
        "/admin/templates/preview",
        data=form(token, **{**fields, "html": "<p>Changed, {{ who }}.</p>"}),
    )
    assert "Changed, Ada." in frame_html(admin, changed.text).text

    saved = admin.post("/admin/templates/save", data=form(token, **fields))
    assert saved.status_code == 303
    assert saved.headers["location"] == "/admin/templates/edit?name=news/launch"
    assert stored(service, "news/launch") == {
        "name": "news/launch",
        "subject": "Hello {{ who }}",
        "html": fields["html"],
        "text": None,
        "updated_at": pytest.approx(time.time(), abs=60),
    }
    editor = admin.get(saved.headers["location"]).text
    assert "Saved template news/launch" in editor
    assert 'value="Hello {{ who }}"' in editor
    assert "readonly" in editor
    again = admin.post("/admin/templates/save", data=form(token, **fields))
    assert again.status_code == 422
    assert "A stored template has this name already" in again.text

    edited = admin.post(
        "/admin/templates/save",
        data=form(token, **{**fields, "mode": "edit", "subject": "Bye {{ who }}", "text": "t"}),
    )
    assert edited.status_code == 303
    row = stored(service, "news/launch")
    assert isinstance(row, dict)
    assert (row["subject"], row["text"]) == ("Bye {{ who }}", "t")

    deleted = admin.post(
        "/admin/templates/delete", data={"csrf_token": token, "name": "news/launch"}
    )
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/admin/templates"
    assert "Deleted the stored template news/launch." in admin.get("/admin/templates").text
    assert stored(service, "news/launch") is None
    assert admin.get("/admin/templates/edit?name=news/launch").status_code == 404


def test_overriding_a_file_starts_from_its_sources(admin: httpx.Client) -> None:
    page = admin.get("/admin/templates/new?from=task_assigned")
    assert page.status_code == 200
    assert "saving stores a copy that overrides it" in page.text
    assert "{{ task }} is yours" in html.unescape(page.text)
    # The sample context has no "task": the preview names the variable and its line.
    assert preview_errors(page.text) == [
        "Subject, line 1: 'task' is undefined",
        "HTML, line 1: 'task' is undefined",
        "Text, line 1: 'task' is undefined",
    ]
    assert admin.get("/admin/templates/new?from=nothing_here").status_code == 404


def test_template_errors_name_their_line(service: AdminService, admin: httpx.Client) -> None:
    token = token_of(admin)
    broken = {
        "name": "broken",
        "subject": "Fine",
        "html": "<p>one</p>\n<p>two</p>\n<p>{{ user.name }}</p>",
        "text": "one\n{% if %}\n",
        "context": "{}",
    }
    page = admin.post("/admin/templates/preview", data=form(token, **broken))
    assert page.status_code == 200
    assert preview_errors(page.text) == [
        "HTML, line 3: 'user' is undefined",
        "Text, line 2: syntax error: Expected an expression, got 'end of statement block'",
    ]
    bad_json = admin.post(
        "/admin/templates/preview", data=form(token, **{**broken, "context": '{\n"a": }'})
    )
    assert preview_errors(bad_json.text) == [
        "Sample context, line 2: not valid JSON: Expecting value"
    ]

    refused = admin.post("/admin/templates/save", data=form(token, **broken))
    assert refused.status_code == 422
    assert "Not saved: see the fields below." in refused.text
    assert "Line 2: syntax error: Expected an expression" in html.unescape(refused.text)
    assert stored(service, "broken") is None  # compiled first: a syntax error stores nothing


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ config }}", "'config' is undefined"),
        ("{{ settings.SECRET_KEY }}", "'settings' is undefined"),
        ("{{ ''.__class__ }}", "not allowed in a template: access to attribute '__class__'"),
        (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "not allowed in a template: access to attribute '__class__'",
        ),
        (
            "{{ lipsum.__globals__['os'].environ }}",
            "not allowed in a template: access to attribute '__globals__'",
        ),
        (
            "{{ cycler.__init__.__globals__ }}",
            "not allowed in a template: access to attribute '__init__'",
        ),
        ("{% for i in range(10**9) %}{{ i }}{% endfor %}", "range() of more than"),
    ],
)
def test_the_sandbox_refuses_what_reaches_for_secrets(
    service: AdminService, admin: httpx.Client, source: str, refusal: str
) -> None:
    token = token_of(admin)
    page = admin.post(
        "/admin/templates/preview",
        data=form(token, name="probe", subject="s", html=f"<p>{source}</p>"),
    )
    assert page.status_code == 200  # an error in the preview, never a 500
    errors = preview_errors(page.text)
    assert len(errors) == 1
    assert errors[0].startswith("HTML, line 1: " + refusal), errors
    assert _FRAME.search(page.text) is None  # nothing rendered, nothing framed
    # The service's SECRET_KEY and passwords are in no answer (the watch checks each one).
    assert service.process.watch.secrets


def test_the_script_endpoint_answers_json(admin: httpx.Client) -> None:
    token = token_of(admin)
    fields = form(None, subject="Hi {{ n }}", html="<b>{{ n }}</b>", context='{"n": 7}')
    refused = admin.post("/admin/api/templates/preview", data=fields)
    assert refused.status_code == 403
    wrong = admin.post("/admin/api/templates/preview", data=fields, headers={"X-CSRF-Token": "x"})
    assert wrong.status_code == 403
    answer = admin.post(
        "/admin/api/templates/preview", data=fields, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (body["subject"], body["text"], body["errors"]) == ("Hi 7", "7\n", [])
    frame = admin.get(body["html_url"])
    assert frame.text.strip() == "<b>7</b>"
    assert frame.headers["content-security-policy"] == PREVIEW_CSP

    failing = admin.post(
        "/admin/api/templates/preview",
        data={**fields, "text": "a\n{{ missing }}"},
        headers={"X-CSRF-Token": token},
    ).json()
    assert failing["errors"] == [{"part": "text", "line": 2, "message": "'missing' is undefined"}]
    text_only = admin.post(
        "/admin/api/templates/preview",
        data={**fields, "html": "", "text": "plain {{ n }}"},
        headers={"X-CSRF-Token": token},
    ).json()
    assert (text_only["html_url"], text_only["text"]) == (None, "plain 7")


def test_the_preview_frame_is_sandboxed_with_its_own_csp(
    service: AdminService, admin: httpx.Client
) -> None:
    token = token_of(admin)
    page = admin.post(
        "/admin/templates/preview",
        data=form(token, subject="s", html='<p onclick="x()">hi</p><script>alert(1)</script>'),
    )
    frame = frame_html(admin, page.text)
    assert frame.headers["content-security-policy"] == PREVIEW_CSP
    assert frame.headers["cache-control"] == "no-store"
    assert frame.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>" not in page.text  # the template's HTML never enters the admin page
    assert admin.get("/admin/templates/preview/not-a-token").status_code == 404
    # A preview is for the admin who asked for it: another account cannot read it.
    url = _FRAME.search(page.text)
    assert url is not None
    with service.engine.begin() as connection:
        if not any(user.username == "other" for user in list_users(connection)):
            create_user(connection, "other", "other-password-123")
    with service.client() as other:
        login = other.get("/admin/login")
        signed_in = other.post(
            "/admin/login",
            data={"username": "other", "password": "other-password-123",
                  "csrf_token": csrf_token(login.text), "next": "/admin/"},
        )  # fmt: skip
        assert signed_in.status_code == 303
        assert other.get(html.unescape(url.group(1))).status_code == 404


def test_every_post_needs_the_csrf_token(service: AdminService, admin: httpx.Client) -> None:
    fields = form(None, name="sneaky", subject="s", text="t")
    assert admin.post("/admin/templates/save", data=fields).status_code == 403
    assert admin.post("/admin/templates/preview", data=fields).status_code == 403
    assert stored(service, "sneaky") is None
    token = token_of(admin)
    assert admin.post("/admin/templates/save", data={**fields, "csrf_token": token}).is_redirect
    assert admin.post("/admin/templates/delete", data={"name": "sneaky"}).status_code == 403
    assert stored(service, "sneaky") is not None
