"""The Suppressions pages against a real ``mailroom serve``: list and search, add (its errors
named by field), remove (CSRF checked), import a CSV (every bad row named with its line),
export and import back, an address's page with its consent history and the sources, and
the opt-outs of one notification type (no entries of the list) beside it and on that page."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from sqlalchemy import delete

from mailroom.consent.preferences import set_email_preference
from mailroom.consent.suppression import suppress, suppress_in
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.outbox.schema import consent_log, preferences, suppressions
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.web.admin.suppression_files import REJECTED_SHOWN
from support.admin_service import AdminService, csrf_token, running_admin_service, table_rows


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminService]:
    with running_admin_service(tmp_path_factory.mktemp("suppressions")) as running:
        yield running
    assert running.process.watch.checked > 0


@pytest.fixture
def admin(service: AdminService) -> Iterator[httpx.Client]:
    with service.engine.begin() as connection:
        connection.execute(delete(suppressions))
        connection.execute(delete(consent_log))
        connection.execute(delete(preferences))
    with closing(service.signed_in()) as client:
        yield client


def listed(page: str) -> list[tuple[str, ...]]:
    """(address, scope, reason, source) of each row of the list page."""
    return [tuple(row[:4]) for row in table_rows(page, "suppressions-list")]


def add(admin: httpx.Client, token: str | None, **fields: str) -> httpx.Response:
    data = {"csrf_token": token, **fields} if token is not None else fields
    return admin.post("/admin/suppressions/add", data=data)


def test_the_pages_need_a_session(service: AdminService) -> None:
    with service.client() as anonymous:
        for path in (
            "/admin/suppressions",
            "/admin/suppressions/ada@example.com",
            "/admin/suppressions/import",
            "/admin/suppressions/export.csv",
        ):
            answer = anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login?next=")


def test_add_search_and_remove(service: AdminService, admin: httpx.Client) -> None:
    empty = admin.get("/admin/suppressions")
    assert "The suppression list is empty" in empty.text
    token = csrf_token(empty.text)

    assert add(admin, None, address="ada@example.com").status_code == 403
    added = add(
        admin,
        token,
        address="Ada@Example.com",
        scope="all",
        reason="hard_bounce",
        expires="+30d",
        note="bounced twice",
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/admin/suppressions"
    assert add(admin, token, address="bob@example.com", scope="list:news").status_code == 303
    assert add(admin, token, address="carol@example.com", reason="complaint").status_code == 303

    page = admin.get("/admin/suppressions").text
    assert "Suppressed carol@example.com for all (complaint)." in page  # the last one's notice
    assert listed(page) == [
        ("ada@example.com", "all", "hard_bounce", "Admin"),
        ("bob@example.com", "list:news", "manual", "Admin"),
        ("carol@example.com", "all", "complaint", "Admin"),
    ]
    assert "bounced twice" in page

    def found(**params: str) -> list[str]:
        return [row[0] for row in listed(admin.get("/admin/suppressions", params=params).text)]

    assert found(q="CAROL") == ["carol@example.com"]
    assert found(scope="list:news") == ["bob@example.com"]
    assert found(q="example", scope="all") == ["ada@example.com", "carol@example.com"]
    bad_scope = admin.get("/admin/suppressions", params={"scope": "everything"})
    assert bad_scope.status_code == 422
    assert "is not &#39;all&#39;" in bad_scope.text

    gone = {"address": "bob@example.com", "scope": "list:news"}
    assert admin.post("/admin/suppressions/remove", data=gone).status_code == 403
    removed = admin.post("/admin/suppressions/remove", data={**gone, "csrf_token": token})
    assert removed.status_code == 303
    after = admin.get("/admin/suppressions").text
    assert "Removed bob@example.com from the suppression list for list:news." in after
    assert [row[0] for row in listed(after)] == ["ada@example.com", "carol@example.com"]


def test_the_list_pages_by_entry_id(service: AdminService, admin: httpx.Client) -> None:
    with service.engine.begin() as connection:
        for n in range(105):
            suppress_in(connection, f"p{n:03d}@example.com", SuppressionReason.MANUAL)
    first = admin.get("/admin/suppressions").text
    assert [row[0] for row in listed(first)] == [f"p{n:03d}@example.com" for n in range(100)]
    following = re.search(r'href="(/admin/suppressions\?after=\d+[^"]*)"', first)
    assert following is not None
    second = admin.get(html.unescape(following.group(1))).text
    assert [row[0] for row in listed(second)] == [f"p{n:03d}@example.com" for n in range(100, 105)]
    assert "?after=" not in second.split("First page", 1)[1]  # no page after the last


def test_a_refused_entry_names_each_field_and_adds_nothing(
    service: AdminService, admin: httpx.Client
) -> None:
    token = csrf_token(admin.get("/admin/suppressions").text)
    refused = add(
        admin,
        token,
        address="not an address",
        scope="everything",
        reason="tired",
        expires="2001-01-01",
    )
    assert refused.status_code == 422
    errors = dict(re.findall(r'<p class="error" id="add-(\w+)-error">([^<]+)</p>', refused.text))
    assert set(errors) == {"address", "scope", "expires"}
    assert "has already passed" in errors["expires"]
    assert "is not one of" in refused.text  # the reason
    assert 'value="not an address"' in refused.text  # what was typed is kept
    assert listed(admin.get("/admin/suppressions").text) == []


def test_import_names_every_rejected_row_and_keeps_the_others(
    service: AdminService, admin: httpx.Client
) -> None:
    form = admin.get("/admin/suppressions/import")
    assert form.status_code == 200
    token = csrf_token(form.text)
    upload = (
        "address,scope,reason,expires_at,note\r\n"
        "good1@example.com,all,manual,,first\r\n"
        "not-an-address,all,manual,,\r\n"
        "good2@example.com,list:news,unsubscribed,2099-01-01,\r\n"
        "bad-reason@example.com,all,bored,,\r\n"
        "bad-scope@example.com,everything,manual,,\r\n"
    )
    files = {"file": ("list.csv", upload.encode(), "text/csv")}
    assert admin.post("/admin/suppressions/import", files=files, data={}).status_code == 403
    answer = admin.post("/admin/suppressions/import", files=files, data={"csrf_token": token})
    assert answer.status_code == 422  # some rows were refused
    assert "Imported 2 entries; rejected 3 rows." in answer.text
    lines = dict(table_rows(answer.text, "import-rejected"))
    assert set(lines) == {"3", "5", "6"}
    assert lines["3"].startswith("'not-an-address'")
    assert "'bored' is not one of" in lines["5"]
    assert "'everything' is not" in lines["6"]
    assert listed(admin.get("/admin/suppressions").text) == [
        ("good1@example.com", "all", "manual", "Admin"),
        ("good2@example.com", "list:news", "unsubscribed", "Admin"),
    ]

    unknown_column = admin.post(
        "/admin/suppressions/import",
        files={"file": ("x.csv", b"address,colour\r\na@example.com,red\r\n", "text/csv")},
        data={"csrf_token": token},
    )
    assert unknown_column.status_code == 422
    # Not taken for a header, so every row is read as data and refused, each named.
    header_row, data_row = table_rows(unknown_column.text, "import-rejected")
    assert header_row[0] == "1"
    assert "if this is a header: 'colour' is not a column" in header_row[1]
    assert data_row[0] == "2"
    assert "'red' is not 'all'" in data_row[1]
    twice = admin.post(
        "/admin/suppressions/import",
        files={"file": ("y.csv", b"address,address\r\na@example.com,b@example.com\r\n")},
        data={"csrf_token": token},
    )
    assert twice.status_code == 422
    assert "a column named twice" in twice.text
    assert "nothing was imported" in twice.text
    assert "a@example.com" not in [row[0] for row in listed(admin.get("/admin/suppressions").text)]


def test_export_imports_back_as_the_same_list(service: AdminService, admin: httpx.Client) -> None:
    token = csrf_token(admin.get("/admin/suppressions").text)
    add(admin, token, address="=cmd@example.com", note="+formula-looking")
    add(admin, token, address="dan@example.com", scope="type:news.weekly", expires="2099-12-31")
    add(admin, token, address="eve@example.com", reason="unsubscribed", note='comma, and "quote"')
    exported = admin.get("/admin/suppressions/export.csv")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    assert exported.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["address", "scope", "reason", "expires_at", "note", "created_at"]
    assert [row[:5] for row in rows[1:]] == [
        ["'=cmd@example.com", "all", "manual", "", "'+formula-looking"],
        ["dan@example.com", "type:news.weekly", "manual", "2099-12-31T00:00:00Z", ""],
        ["eve@example.com", "all", "unsubscribed", "", 'comma, and "quote"'],
    ]
    filtered = admin.get("/admin/suppressions/export.csv", params={"q": "dan"})
    assert [row[0] for row in csv.reader(io.StringIO(filtered.text))] == [
        "address",
        "dan@example.com",
    ]

    with service.engine.begin() as connection:
        connection.execute(delete(suppressions))
    back = admin.post(
        "/admin/suppressions/import",
        files={"file": ("export.csv", exported.content, "text/csv")},
        data={"csrf_token": token},
    )
    assert back.status_code == 200
    assert "Imported 3 entries; rejected 0 rows." in back.text
    again = admin.get("/admin/suppressions/export.csv")
    assert [row[:5] for row in csv.reader(io.StringIO(again.text))] == [row[:5] for row in rows]


def test_an_address_page_shows_each_source_in_its_history(
    service: AdminService, admin: httpx.Client
) -> None:
    address = "frank@example.com"
    suppress(service.engine, address, SuppressionReason.MANUAL, scope="list:news", source="cli")
    suppress(service.engine, address, SuppressionReason.HARD_BOUNCE, scope="list:ops", source="api")
    # The unsubscribe link of a message, followed and confirmed as a recipient would.
    unsubscribe = UnsubscribeTokens(service.settings).make(address, "all")
    with service.client() as recipient:
        confirmed = recipient.post(f"/unsubscribe/{unsubscribe}", data={"confirm": "1"})
    assert confirmed.status_code == 200
    token = csrf_token(admin.get("/admin/suppressions").text)
    removed = admin.post(
        "/admin/suppressions/remove",
        data={"address": address, "scope": "list:ops", "back": "detail", "csrf_token": token},
    )
    assert removed.status_code == 303
    assert removed.headers["location"] == f"/admin/suppressions/{address}"

    listing = listed(admin.get("/admin/suppressions").text)
    assert sorted(listing) == [
        (address, "all", "unsubscribed", "Unsubscribe link"),
        (address, "list:news", "manual", "Manual (CLI)"),
    ]
    page = admin.get(f"/admin/suppressions/{address}")
    assert page.status_code == 200
    history = [row[1:4] for row in table_rows(page.text, "consent-history")]
    assert history == [
        ["suppressed", "list:news", "Manual (CLI)"],
        ["suppressed", "list:ops", "API"],
        ["unsubscribed", "all", "Unsubscribe link"],
        ["unsuppressed", "list:ops", "Admin"],
    ]
    nobody = admin.get("/admin/suppressions/nobody@example.com")
    assert nobody.status_code == 404
    assert "The consent log has nothing on this address." in nobody.text


def test_who_turned_a_type_off_is_listed_and_on_their_address_page(
    service: AdminService, admin: httpx.Client
) -> None:
    address = "gus@example.com"
    unsubscribe = UnsubscribeTokens(service.settings).make(address, "type:digest")
    with service.client() as recipient:
        confirmed = recipient.post(f"/unsubscribe/{unsubscribe}", data={"confirm": "1"})
    assert confirmed.status_code == 200
    set_email_preference(service.engine, address, "news", True, source="preferences")
    set_email_preference(service.engine, "hal@example.com", "news", False, source="api")
    set_email_preference(service.engine, "user-7", "digest", False, source="api")

    page = admin.get("/admin/suppressions").text
    assert listed(page) == []  # an opt-out is no entry of the suppression list
    assert "The suppression list is empty." in page
    assert "every address may be mailed" not in page  # not of the types turned off
    opted_out = [row[:2] + row[3:4] for row in table_rows(page, "opt-outs-list")]
    assert opted_out == [
        ["user-7 (user key)", "digest", "API"],
        ["hal@example.com", "news", "API"],
        [address, "digest", "Unsubscribe link"],
    ]
    assert 'href="/admin/suppressions/gus%40example.com"' in page
    searched = admin.get("/admin/suppressions", params={"q": "GUS@"}).text
    assert [row[0] for row in table_rows(searched, "opt-outs-list")] == [address]
    nothing = admin.get("/admin/suppressions", params={"q": "nobody"}).text
    assert "No opt-out matches." in nothing

    detail = admin.get(f"/admin/suppressions/{address}")
    assert detail.status_code == 200  # no entry of the list, but choices and a history
    choices = [row[:2] + row[3:4] for row in table_rows(detail.text, "recipient-preferences")]
    assert choices == [
        ["digest", "off", "Unsubscribe link"],
        ["news", "on", "Preference centre"],
    ]
    # The history says what each change set, in words: "email: on", not Python's "True".
    changes = [row[1] + " " + row[4] for row in table_rows(detail.text, "consent-history")]
    assert "preference changed email: on" in changes
    assert not any("True" in change or "False" in change for change in changes)
    bare = admin.get("/admin/suppressions/ida@example.com")
    assert "No choice stored: every notification type follows its default." in bare.text


def test_a_paging_id_past_bigint_is_refused_not_an_error(admin: httpx.Client) -> None:
    assert admin.get("/admin/suppressions", params={"after": str(2**63)}).status_code == 422


def test_an_import_of_junk_lists_the_first_rejections_and_counts_the_rest(
    admin: httpx.Client,
) -> None:
    token = csrf_token(admin.get("/admin/suppressions/import").text)
    junk = "".join(f"junk-{n}\r\n" for n in range(REJECTED_SHOWN + 100))
    answer = admin.post(
        "/admin/suppressions/import",
        files={"file": ("junk.csv", junk.encode(), "text/csv")},
        data={"csrf_token": token},
    )
    assert answer.status_code == 422
    assert f"Imported 0 entries; rejected {REJECTED_SHOWN + 100} rows." in answer.text
    lines = [line for line, _ in table_rows(answer.text, "import-rejected")]
    assert lines == [str(n) for n in range(1, REJECTED_SHOWN + 1)]
    assert "…and 100 more rows not shown." in answer.text
