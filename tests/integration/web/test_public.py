"""The public endpoints over HTTP, against a real ``mailroom serve`` process."""

from __future__ import annotations

import re
import sqlite3
import string
import time
from collections.abc import Iterable, Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import lxml.html
from sqlalchemy import select, text

from mailroom.consent import queries as consent_queries
from mailroom.outbox.database_url import sqlite_path
from mailroom.outbox.schema import events, messages
from mailroom.outbox.vocabulary import EventType, HitLabel, NotificationOutcome
from mailroom.tracking.recorder import USER_AGENT_MAX
from mailroom.web.public import PIXEL_GIF, PUBLIC_FORM_MAX_BYTES
from support.mail_checks import html_part, parse
from support.service import ServiceProcess

from .conftest import PUBLIC, SECRET, Public, wait_for

ALPHABET = string.ascii_letters + string.digits + "-_."
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
VARYING = {"date", "content-length"}  # the clock, and the body length of a redirect


def notify(public: Public, type_name: str, to: str) -> tuple[int, EmailMessage]:
    """Notify ``to``; the outbox id and the message as it is stored (the bytes sent)."""
    result = public.notifier.notify(type_name, to, context={"task": "Review"})
    (outcome,) = result.outcomes
    assert outcome.outcome is NotificationOutcome.QUEUED, outcome
    assert outcome.message_pk is not None
    with public.engine.connect() as connection:
        data = connection.execute(
            select(messages.c.data).where(messages.c.id == outcome.message_pk)
        ).scalar_one()
    return outcome.message_pk, parse(data)


def unsubscribe_token(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    match = re.search(rf"<{re.escape(PUBLIC)}/unsubscribe/([^>]+)>", header)
    assert match, header
    return match.group(1)


def hrefs(message: EmailMessage) -> list[str]:
    document = lxml.html.document_fromstring(html_part(message) or "")
    return [a.get("href") or "" for a in document.iter("a")]


def single_byte_changes(token: str) -> Iterable[str]:
    for position, original in enumerate(token):
        replacement = ALPHABET[(ALPHABET.index(original) + 7) % len(ALPHABET)]
        yield token[:position] + replacement + token[position + 1 :]
    yield token[:-1]
    yield token + "A"
    yield token + "/x"


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in VARYING)
    return response.status_code, response.content, headers


def consent_rows(public: Public, recipient: str) -> list[dict[str, object]]:
    with public.engine.connect() as connection:
        return [dict(r) for r in consent_queries.consent_history(connection, recipient)]


def event_rows(public: Public, recipient: str, kind: EventType) -> list[dict[str, object]]:
    with public.engine.connect() as connection:
        rows = connection.execute(
            select(events).where(events.c.recipient == recipient, events.c.type == kind.value)
        )
        return [dict(r._mapping) for r in rows]


def assert_page_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "script-src" not in csp  # default-src 'none': no script at all
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers
    assert "<script" not in response.text


# -- one 404 for every bad token -------------------------------------------------------


def test_every_single_byte_change_of_a_token_gets_the_same_404(public: Public) -> None:
    _, news = notify(public, "news.weekly", "dora@example.com")
    token = unsubscribe_token(news)
    click = next(h for h in hrefs(news) if h.startswith(f"{PUBLIC}/c/")).rsplit("/", 1)[1]
    with public.client() as client:
        reference = comparable(client.get("/unsubscribe/not-a-token"))
        assert reference[0] == 404
        for altered in single_byte_changes(token):
            for response in (
                client.get(f"/unsubscribe/{altered}"),
                client.post(f"/unsubscribe/{altered}", data={"List-Unsubscribe": "One-Click"}),
                client.get(f"/preferences/{altered}"),
                client.post(f"/preferences/{altered}", data={"stop_all": "yes"}),
            ):
                assert comparable(response) == reference, (altered, response.text)
        for altered in single_byte_changes(click):
            assert comparable(client.get(f"/c/{altered}")) == reference, altered
            assert comparable(client.head(f"/c/{altered}"))[0] == 404
        # A token of another kind is as bad as a forged one.
        assert comparable(client.get(f"/c/{token}")) == reference
        assert comparable(client.get(f"/unsubscribe/{click}")) == reference
    assert consent_rows(public, "dora@example.com") == []  # nothing was unsubscribed


def test_the_not_found_page_is_styled_as_the_other_pages(public: Public) -> None:
    with public.client() as client:
        page = client.get("/preferences/not-a-token")
        stylesheet = client.get("/static/public/mailroom.css")
    assert page.status_code == 404
    assert_page_headers(page)
    assert '<link rel="stylesheet" href="/static/public/mailroom.css">' in page.text
    assert '<main class="card">' in page.text
    assert stylesheet.status_code == 200
    assert stylesheet.headers["content-type"].startswith("text/css")


# -- unsubscribe -------------------------------------------------------------------------


def test_get_unsubscribe_shows_a_confirm_button_and_changes_nothing(public: Public) -> None:
    _, message = notify(public, "task.assigned", "erin@example.com")
    token = unsubscribe_token(message)
    with public.client() as client:
        for _ in range(2):
            page = client.get(f"/unsubscribe/{token}")
            assert page.status_code == 200
            assert_page_headers(page)
            assert "Tasks assigned to you" in page.text
            form = lxml.html.document_fromstring(page.text).forms[0]
            assert form.method.upper() == "POST"
            assert client.head(f"/unsubscribe/{token}").status_code == 200
    assert consent_rows(public, "erin@example.com") == []
    assert event_rows(public, "erin@example.com", EventType.UNSUBSCRIBED) == []
    again = public.notifier.notify("task.assigned", "erin@example.com", context={"task": "x"})
    assert again.outcomes[0].outcome is NotificationOutcome.QUEUED


def test_one_click_post_works_in_both_encodings_twice_without_cookies(public: Public) -> None:
    _, first = notify(public, "task.assigned", "finn@example.com")
    _, second = notify(public, "task.assigned", "gail@example.com")
    posts = {
        "finn@example.com": (unsubscribe_token(first), {"data": {"List-Unsubscribe": "One-Click"}}),
        "gail@example.com": (
            unsubscribe_token(second),
            {"files": {"List-Unsubscribe": (None, "One-Click")}},  # multipart/form-data
        ),
    }
    for recipient, (token, body) in posts.items():
        for _ in range(2):
            with public.client() as client:  # a fresh client: no cookie from anywhere
                response = client.post(f"/unsubscribe/{token}", **body)  # type: ignore[arg-type]
                assert response.request.headers.get("cookie") is None
            assert response.status_code == 200, response.text
            assert "location" not in response.headers
            assert_page_headers(response)
            assert "You are unsubscribed" in response.text
        rows = consent_rows(public, recipient)
        assert [(r["action"], r["scope"], r["source"]) for r in rows] == [
            ("preference_changed", "type:task.assigned", "one_click")
        ] * 2
        assert all(isinstance(r["at"], float) for r in rows)
        assert len(event_rows(public, recipient, EventType.UNSUBSCRIBED)) == 1  # idempotent


def test_the_pages_confirm_button_unsubscribes_with_source_link(public: Public) -> None:
    _, message = notify(public, "task.assigned", "hal@example.com")
    token = unsubscribe_token(message)
    with public.client() as client:
        empty = client.post(f"/unsubscribe/{token}", data={"something": "else"})
        assert empty.status_code == 400
        assert consent_rows(public, "hal@example.com") == []
        done = client.post(f"/unsubscribe/{token}", data={"confirm": "yes"})
    assert done.status_code == 200
    assert [r["source"] for r in consent_rows(public, "hal@example.com")] == ["link"]


def test_a_list_unsubscribe_url_posted_as_gmail_does_stops_that_type(public: Public) -> None:
    pk, message = notify(public, "task.assigned", "Ivy <ivy@example.com>")
    public.wait_sent(pk)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = public.local(f"{PUBLIC}/unsubscribe/{unsubscribe_token(message)}")
    # Gmail: a POST of exactly this body, form-urlencoded, no cookie, no redirect followed.
    response = public.service.post(
        url.removeprefix(public.service.url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    again = public.notifier.notify("task.assigned", "Ivy <ivy@example.com>", context={"task": "x"})
    assert [(o.outcome, o.reason) for o in again.outcomes] == [
        (NotificationOutcome.SKIPPED, "opted_out")
    ]
    # Other types still reach them.
    news = public.notifier.notify("news.weekly", "ivy@example.com").outcomes[0]
    assert news.outcome is NotificationOutcome.QUEUED


# -- preferences -------------------------------------------------------------------------


def preference_form(page: httpx.Response) -> dict[str, object]:
    form = lxml.html.document_fromstring(page.text).forms[0]
    checked = [i.get("value") for i in form.inputs if i.get("name") == "type" and i.checked]
    return {
        "token": form.fields["token"],
        "csrf": form.fields["csrf"],
        "types": [i.get("value") for i in form.inputs if i.get("name") == "type"],
        "checked": checked,
    }


def test_the_preference_centre_shows_and_saves_every_type(public: Public) -> None:
    _, message = notify(public, "news.weekly", "jo@example.com")
    token = unsubscribe_token(message)
    with public.client() as client:
        page = client.get(f"/preferences/{token}")
        assert page.status_code == 200
        assert_page_headers(page)
        form = preference_form(page)
        # Every type they may turn off (the registry's and the settings file's); not resets.
        assert form["types"] == ["digest.monthly", "news.weekly", "task.assigned"]
        assert form["checked"] == ["news.weekly", "task.assigned"]  # digest: off by default
        assert "A monthly digest" in page.text
        assert "Password resets" not in page.text
        # A post without the page's CSRF token changes nothing.
        for csrf in ("", "forged", preference_form(client.get(f"/preferences/{token}"))["csrf"]):
            refused = client.post(
                f"/preferences/{token}",
                data={"token": "other" if csrf else token, "csrf": csrf, "type": []},
            )
            assert refused.status_code == 403
        assert consent_rows(public, "jo@example.com") == []
        saved = client.post(
            f"/preferences/{token}",
            data={"token": token, "csrf": form["csrf"], "type": ["digest.monthly"]},
        )
        assert saved.status_code == 200
        assert preference_form(saved)["checked"] == ["digest.monthly"]
        stopped = client.post(
            f"/preferences/{token}",
            data={
                "token": token,
                "csrf": form["csrf"],
                "type": ["digest.monthly"],
                "stop_all": "yes",
            },
        )
        assert stopped.status_code == 200
    rows = consent_rows(public, "jo@example.com")
    assert sorted((r["action"], r["scope"], r["source"]) for r in rows) == [
        ("preference_changed", "type:digest.monthly", "preferences"),
        ("preference_changed", "type:news.weekly", "preferences"),
        ("preference_changed", "type:task.assigned", "preferences"),
        ("unsubscribed", "all", "preferences"),
    ]
    skipped = public.notifier.notify("news.weekly", "jo@example.com").outcomes[0]
    assert (skipped.outcome, skipped.reason) == (NotificationOutcome.SKIPPED, "opted_out")


# -- the pixel ---------------------------------------------------------------------------


def pixel_token(message: EmailMessage) -> str:
    document = lxml.html.document_fromstring(html_part(message) or "")
    srcs = [img.get("src") or "" for img in document.iter("img")]
    (src,) = [s for s in srcs if s.startswith(f"{PUBLIC}/trck/")]
    return src.rsplit("/", 1)[1]


def assert_pixel(response: httpx.Response, *, head: bool = False) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert "no-store" in response.headers["cache-control"]
    assert response.content == (b"" if head else PIXEL_GIF)


def test_the_pixel_answers_the_image_and_records_labelled_opens(public: Public) -> None:
    pk, message = notify(public, "news.weekly", "kai@example.com")
    token = pixel_token(message)
    with public.client() as client:
        for bad in ("x", token[:-1], token + "A", token.replace(".", "/"), "%00", "a" * 3000):
            assert_pixel(client.get(f"/trck/{bad}"))
        assert_pixel(client.get(f"/trck/{token}", headers={"User-Agent": FIREFOX}))
        assert_pixel(client.head(f"/trck/{token}", headers={"User-Agent": FIREFOX}), head=True)
        assert_pixel(client.get(f"/trck/{token}", headers={"User-Agent": GMAIL_PROXY}))

    def opens() -> list[dict[str, object]]:
        return event_rows(public, "kai@example.com", EventType.OPENED)

    wait_for(lambda: len(opens()) == 3)
    found = opens()
    assert {r["message_pk"] for r in found} == {pk}
    assert sorted(str(r["label"]) for r in found) == sorted(
        [HitLabel.HUMAN, HitLabel.SCANNER, HitLabel.PREFETCH]
    )
    details = [r["detail"] for r in found]
    assert all(isinstance(d, dict) and d["ip"] == "127.0.0.0" for d in details)


def test_the_pixel_never_fails_visibly_while_the_database_does(public: Public) -> None:
    pk, message = notify(public, "news.weekly", "lee@example.com")
    token = pixel_token(message)
    # Delivered first: the embedded worker writes its own events, and must not be the one to
    # find the table gone (its retries are another test's business).
    public.wait_sent(pk)
    with public.engine.begin() as connection:
        connection.execute(text("ALTER TABLE mailroom_events RENAME TO mailroom_events_away"))
    try:
        with public.client() as client:
            for _ in range(5):
                assert_pixel(client.get(f"/trck/{token}", headers={"User-Agent": FIREFOX}))
            wait_for(lambda: "could not write" in public.service.output)
    finally:
        with public.engine.begin() as connection:
            connection.execute(text("ALTER TABLE mailroom_events_away RENAME TO mailroom_events"))
    # The hits waited in memory and are written once the table is back.
    wait_for(lambda: len(event_rows(public, "lee@example.com", EventType.OPENED)) == 5)


# -- the click redirect ------------------------------------------------------------------


def test_a_click_goes_to_the_messages_own_link_and_nowhere_else(public: Public) -> None:
    pk, message = notify(public, "news.weekly", "max@example.com")
    public.wait_sent(pk)  # delivered: each click below comes seconds after it
    with public.engine.connect() as connection:
        stored = connection.execute(
            select(messages.c.tracked_links).where(messages.c.id == pk)
        ).scalar_one()
    assert stored == ["https://blog.example/post?id=7&x=1", "https://shop.example/"]
    links = hrefs(message)
    assert "mailto:editor@acme.example" in links
    tracked = [h for h in links if h.startswith(f"{PUBLIC}/c/")]
    assert len(tracked) == 2
    with public.client() as client:
        for index, href in enumerate(tracked):
            token = href.rsplit("/", 1)[1]
            for response in (
                client.get(f"/c/{token}", headers={"User-Agent": FIREFOX}),
                client.head(f"/c/{token}"),
                client.get(f"/c/{token}?url=https://evil.example/&next=//evil.example"),
                client.get(
                    f"/c/{token}",
                    headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
                ),
            ):
                assert response.status_code in (302, 303)
                location = response.headers["location"]
                assert location == stored[index]
                assert token not in location
                assert "set-cookie" not in response.headers
            assert client.get(f"/c/{token}/https://evil.example/").status_code == 404

    def clicks() -> list[dict[str, object]]:
        return event_rows(public, "max@example.com", EventType.CLICKED)

    wait_for(lambda: len(clicks()) == 8)
    found = clicks()
    assert sorted({r["link_index"] for r in found}) == [0, 1]  # type: ignore[type-var]
    # Seconds after delivery: no reader clicks that fast; a link scanner does.
    assert {r["label"] for r in found} == {HitLabel.SCANNER.value}


def test_hits_buffered_at_a_graceful_stop_are_written(public: Public, tmp_path: Path) -> None:
    """SIGTERM flushes the hit buffer: a hit the second before a stop is not lost."""
    _, message = notify(public, "news.weekly", "nia@example.com")
    token = pixel_token(message)
    env = {
        "DATABASE_URL": str(public.settings.DATABASE_URL),
        "SECRET_KEY": SECRET,
        "MAILROOM_TRANSPORT": "null",
    }
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as other:
        for _ in range(3):
            assert_pixel(other.get(f"/trck/{token}", headers={"User-Agent": FIREFOX}))
        assert other.stop() == 0  # at once: well inside the writer's one-second interval
    assert len(event_rows(public, "nia@example.com", EventType.OPENED)) == 3


# -- what no request can do to the others ------------------------------------------------


def test_a_click_is_not_held_up_by_a_database_writer(public: Public) -> None:
    _, news = notify(public, "news.weekly", "ola@example.com")
    click = next(h for h in hrefs(news) if h.startswith(f"{PUBLIC}/c/"))
    _, task = notify(public, "task.assigned", "ola@example.com")
    page = f"/preferences/{unsubscribe_token(task)}"
    path = sqlite_path(public.engine.url)
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None, timeout=10)
    writer.execute("BEGIN IMMEDIATE")  # any writer: the worker's batch, a hit flush, a backup
    try:
        with public.client() as client:
            client.timeout = httpx.Timeout(3.0)
            assert client.get(public.local(click)).status_code == 302
            assert client.get(page).status_code == 200  # the preference page only reads
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def wait_until_the_write_lock_is_taken(public: Public, timeout: float) -> bool:
    path = sqlite_path(public.engine.url)
    assert path is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
        time.sleep(0.02)
    return False


def test_a_huge_user_agent_on_the_pixel_stalls_no_write(public: Public) -> None:
    _, news = notify(public, "news.weekly", "pia@example.com")
    _, task = notify(public, "task.assigned", "pia@example.com")
    huge = "Mozilla/5.0 " + "A" * 20_000_000
    hit = httpx.get(
        public.local(f"{PUBLIC}/trck/{pixel_token(news)}"), headers={"User-Agent": huge}
    )
    assert_pixel(hit)
    wait_until_the_write_lock_is_taken(public, 2.0)  # the hit writer's turn, if it is slow
    response = httpx.post(
        f"{public.service.url}/unsubscribe/{unsubscribe_token(task)}",
        data={"List-Unsubscribe": "One-Click"},
        timeout=3.0,
    )
    assert response.status_code == 200
    wait_for(lambda: len(event_rows(public, "pia@example.com", EventType.OPENED)) == 1)
    (opened,) = event_rows(public, "pia@example.com", EventType.OPENED)
    assert opened["detail"]["user_agent"] == huge[:USER_AGENT_MAX]  # type: ignore[index]


def test_a_form_over_the_public_limit_gets_413_chunked_or_not(public: Public) -> None:
    _, message = notify(public, "task.assigned", "quinn@example.com")
    url = f"{public.service.url}/unsubscribe/{unsubscribe_token(message)}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    pad = b"x" * (PUBLIC_FORM_MAX_BYTES + 1)

    def chunked() -> Iterator[bytes]:
        yield b"List-Unsubscribe=One-Click&pad="
        yield pad

    assert httpx.post(url, content=chunked(), headers=form, timeout=10).status_code == 413
    sized = b"List-Unsubscribe=One-Click&pad=" + pad
    assert httpx.post(url, content=sized, headers=form, timeout=10).status_code == 413
    assert consent_rows(public, "quinn@example.com") == []  # nothing was unsubscribed
    # Within the limit, the same form works.
    ok = httpx.post(url, content=b"List-Unsubscribe=One-Click&pad=xx", headers=form, timeout=10)
    assert ok.status_code == 200


def test_no_redirect_is_built_from_the_host_header(public: Public) -> None:
    with public.client() as client:
        for path in ("/c", "/trck", "/unsubscribe", "/preferences", "/healthz/", "/api/v1/"):
            response = client.get(path, headers={"Host": "evil.example"})
            assert not response.is_redirect, (path, response.headers)
            assert "evil.example" not in response.headers.get("location", "")


def test_the_access_log_shows_no_token(public: Public, tmp_path: Path) -> None:
    _, news = notify(public, "news.weekly", "rae@example.com")
    _, task = notify(public, "task.assigned", "rae@example.com")
    token, pixel = unsubscribe_token(task), pixel_token(news)
    env = {
        "DATABASE_URL": str(public.settings.DATABASE_URL),
        "SECRET_KEY": SECRET,
        "MAILROOM_TRANSPORT": "null",
    }
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path, global_args=["-v"]) as other:
        for path in (f"/unsubscribe/{token}", f"/preferences/{token}", f"/trck/{pixel}"):
            httpx.get(f"{other.url}{path}?x=1")
        wait_for(lambda: other.output.count("/trck/…?x=1") == 1)
        assert other.stop() == 0
    assert "/unsubscribe/…?x=1" in other.output
    assert "/preferences/…?x=1" in other.output
    assert token not in other.output
    assert pixel not in other.output
