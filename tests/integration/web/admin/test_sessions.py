"""Admin sign-in, sessions and CSRF against a real ``mailroom serve``: the first admin made
on the first start, the session cookie's attributes, redirects to the login page that never
leave the admin pages, forms refused without their token, sign-out, and the throttle.

Every answer goes through the service's secret watch, which holds ``SECRET_KEY`` and the
admin password: no page, header or output line may contain them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mailroom.access import create_user
from mailroom.cli import main
from mailroom.outbox.database import create_outbox_engine
from support.cli_database import CLEAN
from support.service import ServiceProcess

SECRET = "admin-sessions-test-secret-0123456789-abcdef"
PASSWORD = "admin-password-for-the-tests"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_GENERATED = re.compile(r"admin account “(\S+)” created with the password (\S+)")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin")


@pytest.fixture(scope="module")
def service(home: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": f"sqlite:///{home / 'outbox.db'}",
        "SECRET_KEY": SECRET,
        "MAILROOM_ADMIN_PASSWORD": PASSWORD,
        "MAILROOM_TRANSPORT": "null",
        # The tests stand in for a proxy: forwarded headers from 127.0.0.1 are believed.
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    with ServiceProcess(env, ["--no-worker"], cwd=home) as service:
        service.watch.add(PASSWORD)
        yield service
        assert "Traceback" not in service.output, service.output


def browser(service: ServiceProcess, address: str = "198.51.100.1") -> httpx.Client:
    """A client that keeps cookies, as a browser does, from its own client address (the
    throttle counts per address)."""
    return service.client(
        timeout=30.0, follow_redirects=False, headers={"X-Forwarded-For": address}
    )


def csrf_of(page: httpx.Response) -> str:
    match = _CSRF.search(page.text)
    assert match is not None, page.text
    return match.group(1)


def sign_in(
    client: httpx.Client, username: str, password: str, next_path: str = ""
) -> httpx.Response:
    form = client.get("/admin/login")
    assert form.status_code == 200
    return client.post(
        "/admin/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(form),
            "next": next_path,
        },
    )


def session_cookie(answer: httpx.Response) -> SimpleCookie:
    cookie = SimpleCookie()
    for header in answer.headers.get_list("set-cookie"):
        cookie.load(header)
    assert "mailroom_session" in cookie, answer.headers
    return cookie


def test_the_first_start_made_the_admin_from_the_password_setting(
    service: ServiceProcess,
) -> None:
    assert f"admin: {service.url}/admin/" in service.stdout
    assert "created with the password" not in service.stdout
    assert "made for this process" not in service.stdout
    with browser(service) as client:
        answer = sign_in(client, "admin", PASSWORD)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/"
        home = client.get("/admin/")
    assert home.status_code == 200
    assert "Sign out" in home.text
    assert ">admin<" in home.text


def test_a_generated_password_is_printed_once_and_works(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}", "MAILROOM_ADMIN_USER": "ops"}
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as first:
        match = _GENERATED.search(first.stdout)
        assert match is not None, first.stdout
        assert match.group(1) == "ops"
        password = match.group(2)
        assert "admin sessions: signed with a key made for this process" in first.stdout
        with browser(first) as client:
            assert sign_in(client, "ops", password).status_code == 303
            # Printed once on the output, so not in the watch: pages are checked here.
            assert password not in client.get("/admin/").text
            assert password not in client.get("/admin/login").text
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as second:
        assert "created with the password" not in second.stdout
        assert password not in second.stdout
        with browser(second) as client:
            assert sign_in(client, "ops", password).status_code == 303


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(
    service: ServiceProcess,
) -> None:
    with browser(service, "198.51.100.2") as client:
        wrong = sign_in(client, "admin", "not the password")
        unknown = sign_in(client, "nobody-at-all", "not the password")
        after = client.get("/admin/")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong user name or password." in wrong.text

    def without_variables(page: httpx.Response) -> str:
        return _CSRF.sub("", page.text).replace("nobody-at-all", "admin")

    assert without_variables(wrong) == without_variables(unknown)
    assert after.status_code == 303  # still signed out


def test_the_session_cookie_is_httponly_lax_and_scoped_to_the_admin(
    service: ServiceProcess,
) -> None:
    with browser(service) as client:
        form = client.get("/admin/login")
        pre = session_cookie(form)["mailroom_session"]
        answer = sign_in(client, "admin", PASSWORD)
    cookie = session_cookie(answer)["mailroom_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/admin"
    assert int(cookie["max-age"]) == 12 * 3600
    assert not cookie["secure"]  # plain http, no proxy saying otherwise
    assert cookie.value != pre.value  # a new session on sign-in, never the pre-session


def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(service: ServiceProcess) -> None:
    with browser(service) as client:
        client.headers["X-Forwarded-Proto"] = "https"
        form = client.get("/admin/login")
        assert session_cookie(form)["mailroom_session"]["secure"] is True
        answer = client.post(
            "/admin/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(form)},
            # httpx keeps a Secure cookie from plain http: send the pre-session by hand.
            headers={
                "Cookie": f"mailroom_session={session_cookie(form)['mailroom_session'].value}"
            },
        )
    assert answer.status_code == 303
    assert session_cookie(answer)["mailroom_session"]["secure"] is True


@pytest.mark.parametrize(
    ("path", "next_path"),
    [
        ("/admin/", "/admin/"),
        ("/admin/?status=failed&q=a%20b", "/admin/%3Fstatus%3Dfailed%26q%3Da%2520b"),
    ],
)
def test_a_page_without_a_session_redirects_to_the_login_page(
    service: ServiceProcess, path: str, next_path: str
) -> None:
    with browser(service) as client:
        answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/login?next={next_path}"
    assert "mailroom_session" not in answer.headers.get("set-cookie", "")


def test_after_sign_in_the_browser_goes_where_it_was_going(service: ServiceProcess) -> None:
    with browser(service) as client:
        answer = sign_in(client, "admin", PASSWORD, "/admin/?tab=queue")
    assert answer.headers["location"] == "/admin/?tab=queue"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "https://evil.example/admin/",
        "//evil.example/admin/",
        "/\\evil.example",
        "/api/v1/messages",
        "/admin/../api/v1/messages",
        "javascript:alert(1)",
    ],
)
def test_next_never_leaves_the_admin_pages(service: ServiceProcess, target: str) -> None:
    with browser(service) as client:
        form = client.get("/admin/login", params={"next": target})
        answer = sign_in(client, "admin", PASSWORD, target)
    assert 'name="next" value="/admin/"' in form.text
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/"


def test_a_post_without_or_with_a_wrong_token_is_refused(service: ServiceProcess) -> None:
    with browser(service) as client:
        assert sign_in(client, "admin", PASSWORD).status_code == 303
        token = csrf_of(client.get("/admin/"))
        missing = client.post("/admin/logout", data={})
        wrong = client.post("/admin/logout", data={"csrf_token": token[:-2] + "xx"})
        still_in = client.get("/admin/")
        login_without = client.post(
            "/admin/login", data={"username": "admin", "password": PASSWORD}
        )
    for answer in (missing, wrong, login_without):
        assert answer.status_code == 403
        assert "This form has expired" in answer.text
        assert "mailroom_session=" not in answer.headers.get("set-cookie", "")
        # Still signed in: the page keeps the navigation and the sign-out button.
        assert '<body class="signed-in">' in answer.text
        assert '<nav class="nav nav-wide" aria-label="Main">' in answer.text
    assert still_in.status_code == 200
    with browser(service) as stranger:
        signed_out = stranger.post("/admin/logout", data={})
    assert signed_out.status_code == 403
    assert '<body class="signed-out">' in signed_out.text
    assert 'aria-label="Main"' not in signed_out.text


def test_another_sessions_token_is_refused(service: ServiceProcess) -> None:
    with browser(service) as one, browser(service) as other:
        sign_in(one, "admin", PASSWORD)
        sign_in(other, "admin", PASSWORD)
        foreign = csrf_of(other.get("/admin/"))
        assert one.post("/admin/logout", data={"csrf_token": foreign}).status_code == 403


def test_sign_out_ends_the_session_even_for_a_copy_of_the_cookie(
    service: ServiceProcess,
) -> None:
    with browser(service) as client:
        sign_in(client, "admin", PASSWORD)
        kept = client.cookies.get("mailroom_session")
        home = client.get("/admin/")
        answer = client.post("/admin/logout", data={"csrf_token": csrf_of(home)})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/login"
        assert 'mailroom_session=""' in answer.headers["set-cookie"]
        assert client.get("/admin/").status_code == 303
        notice = client.get("/admin/login")
    assert "You are signed out." in notice.text
    with browser(service) as replay:
        answer = replay.get("/admin/", headers={"Cookie": f"mailroom_session={kept}"})
    assert answer.status_code == 303


def test_a_signed_out_cookie_stays_signed_out_after_a_restart(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'outbox.db'}",
        "SECRET_KEY": SECRET,
        "MAILROOM_ADMIN_PASSWORD": PASSWORD,
        "MAILROOM_TRANSPORT": "null",
    }
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as first:
        with browser(first) as client:
            sign_in(client, "admin", PASSWORD)
            kept = client.cookies.get("mailroom_session")
            assert client.get("/admin/").status_code == 200
        with browser(first) as other:  # a second browser, signed out by the first's sign-out
            sign_in(other, "admin", PASSWORD)
            other_home = other.get("/admin/")
            assert other_home.status_code == 200
            answer = other.post("/admin/logout", data={"csrf_token": csrf_of(other_home)})
            assert answer.status_code == 303
    with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as second:
        with browser(second) as replay:
            answer = replay.get("/admin/", headers={"Cookie": f"mailroom_session={kept}"})
        assert answer.status_code == 303
        with browser(second) as client:
            assert sign_in(client, "admin", PASSWORD).status_code == 303
            assert client.get("/admin/").status_code == 200


def test_a_new_password_ends_the_sessions_made_before(service: ServiceProcess, home: Path) -> None:
    engine = create_outbox_engine(f"sqlite:///{home / 'outbox.db'}")
    try:
        with engine.begin() as connection:
            create_user(connection, "changer", PASSWORD)
    finally:
        engine.dispose()
    with browser(service, "198.51.100.60") as client:
        sign_in(client, "changer", PASSWORD)
        assert client.get("/admin/").status_code == 200
        result = CliRunner().invoke(
            main,
            ["users", "passwd", "changer", "--password-stdin"],
            env={**dict.fromkeys(CLEAN), "DATABASE_URL": f"sqlite:///{home / 'outbox.db'}"},
            input="the next long password\n",
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert client.get("/admin/").status_code == 303
        assert sign_in(client, "changer", "the next long password").status_code == 303
        assert client.get("/admin/").status_code == 200


def test_a_forged_cookie_is_no_session(service: ServiceProcess) -> None:
    with browser(service) as client:
        sign_in(client, "admin", PASSWORD)
        value = client.cookies.get("mailroom_session")
        assert value is not None
        payload, _, signature = value.partition(".")
        forged = payload[:-2] + "AA" + "." + signature
    with browser(service) as other:
        intact = other.get("/admin/", headers={"Cookie": f"mailroom_session={value}"})
        answer = other.get("/admin/", headers={"Cookie": f"mailroom_session={forged}"})
    assert intact.status_code == 200  # the cookie alone is the session...
    assert answer.status_code == 303  # ...and one changed byte makes it none


def test_the_throttle_answers_429_after_five_failures(service: ServiceProcess, home: Path) -> None:
    # An account of its own: the other tests sign in as admin, which this one blocks.
    engine = create_outbox_engine(f"sqlite:///{home / 'outbox.db'}")
    try:
        with engine.begin() as connection:
            create_user(connection, "guessed", PASSWORD)
    finally:
        engine.dispose()
    with browser(service, "198.51.100.50") as client:
        for _ in range(5):
            assert sign_in(client, "guessed", "wrong guess").status_code == 401
        refused = sign_in(client, "Guessed", PASSWORD)  # even the right password, for now
        other_name = sign_in(client, "someone-else", "wrong guess")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    assert "Too many failed sign-ins. Try again in 15 minutes." in refused.text
    assert "set-cookie" not in refused.headers or "uid" not in refused.headers["set-cookie"]
    assert other_name.status_code == 401  # the limit is per name (and per address, at 20)


def test_admin_pages_carry_the_security_headers(service: ServiceProcess) -> None:
    with browser(service) as client:
        login = client.get("/admin/login")
        sign_in(client, "admin", PASSWORD)
        home = client.get("/admin/")
        css = client.get("/admin/static/admin.css")
        script = client.get("/admin/static/admin.js")
    for page in (login, home):
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'self'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text  # no inline script: the CSP would block it
        assert "style=" not in page.text
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert script.status_code == 200
    assert "dataset.confirm" in script.text


def test_no_page_shows_a_secret(service: ServiceProcess) -> None:
    with browser(service) as client:
        pages = [client.get("/admin/login"), sign_in(client, "admin", PASSWORD)]
        pages.append(client.get("/admin/"))
    for page in pages:
        seen = page.text + str(page.headers)
        assert SECRET not in seen
        assert PASSWORD not in seen
    service.check_output()
