"""The API keys page against a real ``mailroom serve``: a key made there is shown once, on
the answer to the form, and works against the API; no later page holds it (the watch fails
any answer that does); revoking it makes the API refuse it; every POST needs its CSRF
token."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from sqlalchemy import delete

from mailroom.outbox.schema import api_keys
from support.admin_service import AdminService, csrf_token, running_admin_service, table_rows

_KEY = re.compile(r">(mrk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43})</textarea>")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminService]:
    with running_admin_service(tmp_path_factory.mktemp("apikeys")) as running:
        yield running
    assert running.process.watch.checked > 0


@pytest.fixture
def admin(service: AdminService) -> Iterator[httpx.Client]:
    with service.engine.begin() as connection:
        connection.execute(delete(api_keys))
    with closing(service.signed_in()) as client:
        yield client


def create(admin: httpx.Client, token: str | None, **fields: str) -> httpx.Response:
    data = {"csrf_token": token, **fields} if token is not None else fields
    return admin.post("/admin/apikeys/create", data=data)


def status_with(service: AdminService, key: str) -> int:
    with service.process.client(key) as api:
        return api.get("/api/v1/status").status_code


def test_the_pages_need_a_session(service: AdminService) -> None:
    with service.client() as anonymous:
        answer = anonymous.get("/admin/apikeys")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/login?next=/admin/apikeys"


def test_a_key_is_shown_once_works_and_is_revoked(
    service: AdminService, admin: httpx.Client
) -> None:
    empty = admin.get("/admin/apikeys")
    assert "No API key yet" in empty.text
    token = csrf_token(empty.text)

    created = create(admin, token, name="Billing, production", scope="admin")
    assert created.status_code == 200  # the page itself: no redirect carries the key
    assert created.headers["cache-control"] == "no-store"
    assert "set-cookie" not in created.headers  # nor a notice cookie
    found = _KEY.search(created.text)
    assert found is not None
    key = found.group(1)
    assert "Copy this key now: it is not shown again." in created.text
    # From here on, any answer holding the key fails the test.
    service.process.watch.add(key)

    assert status_with(service, key) == 200
    listing = admin.get("/admin/apikeys")
    rows = table_rows(listing.text, "apikeys-list")
    prefix = key.split("_")[1]
    assert [row[:3] + row[5:6] for row in rows] == [
        ["Billing, production", f"mrk_{prefix}_…", "admin", "live"]
    ]
    assert rows[0][4] != "never"  # the API call was recorded as its last use

    revoke = re.search(r'name="id" value="(\d+)"', listing.text)
    assert revoke is not None
    assert admin.post("/admin/apikeys/revoke", data={"id": revoke.group(1)}).status_code == 403
    assert status_with(service, key) == 200
    revoked = admin.post("/admin/apikeys/revoke", data={"csrf_token": token, "id": revoke.group(1)})
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/admin/apikeys"
    assert status_with(service, key) == 401
    after = admin.get("/admin/apikeys").text
    assert "it authenticates nothing any more" in html.unescape(after)
    assert table_rows(after, "apikeys-list")[0][5].startswith("revoked")
    assert 'name="id"' not in after  # no revoke button on a revoked key
    again = admin.post("/admin/apikeys/revoke", data={"csrf_token": token, "id": revoke.group(1)})
    assert again.status_code == 303
    assert "was already revoked" in admin.get("/admin/apikeys").text


def test_create_names_what_is_wrong(service: AdminService, admin: httpx.Client) -> None:
    token = csrf_token(admin.get("/admin/apikeys").text)
    no_name = create(admin, token, name="  ", scope="send")
    assert no_name.status_code == 422
    assert "give the key a name" in no_name.text
    bad_scope = create(admin, token, name="ci", scope="root")
    assert bad_scope.status_code == 422
    assert "Choose send or admin." in bad_scope.text
    assert 'value="ci"' in bad_scope.text  # what was typed is kept
    assert create(admin, None, name="sneaky", scope="admin").status_code == 403
    assert table_rows(admin.get("/admin/apikeys").text, "apikeys-list") == []


def test_a_send_key_cannot_read_the_status(service: AdminService, admin: httpx.Client) -> None:
    token = csrf_token(admin.get("/admin/apikeys").text)
    created = create(admin, token, name="web app", scope="send")
    found = _KEY.search(created.text)
    assert found is not None
    service.process.watch.add(found.group(1))
    assert status_with(service, found.group(1)) == 403  # authenticated, but not an admin key
    assert "send" in table_rows(admin.get("/admin/apikeys").text, "apikeys-list")[0]
