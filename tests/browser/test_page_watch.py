"""The page watch itself: a secret in anything the page loaded (a body, a header, a cookie, a
frame), a script error or a Content Security Policy violation each fail the check; served by a
plain HTTP server in a thread, no Mailroom."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from support import browser as browser_support
from support.api_client import SecretWatch
from support.browser import LAPTOP, PageWatch

SECRET = "watch-test-secret-4f1b"
PAGES = {
    "/plain": ("<title>Plain</title><p>Nothing to see</p>", {}),
    "/styled": ('<link rel="stylesheet" href="/leaky.css"><p>Styled</p>', {}),
    "/leaky.css": (f"/* {SECRET} */ p {{ color: red }}", {"Content-Type": "text/css"}),
    "/header": ("<p>Fine body</p>", {"X-Debug": SECRET}),
    "/cookie": ("<p>Fine body</p>", {"Set-Cookie": f"debug={SECRET}; Path=/"}),
    "/framed": ('<iframe src="/leaky-frame"></iframe>', {}),
    "/leaky-frame": (f"<p>{SECRET}</p>", {}),
    "/wide": ('<div style="width: 2000px">A table too wide for the page</div>', {}),
    "/script-error": ("<script>undefined_function()</script>", {}),
    "/csp": (
        "<p style='color: red'>inline style</p>",
        {"Content-Security-Policy": "default-src 'none'"},
    ),
}


class Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in PAGES:
            self.send_error(404)
            return
        body, headers = PAGES[self.path]
        data = body.encode()
        self.send_response(200)
        for name, value in {"Content-Type": "text/html", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test says what went wrong."""


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def watch(browser: Browser, tmp_path: Path) -> Iterator[PageWatch]:
    opened = PageWatch.open(browser, LAPTOP, SecretWatch([SECRET]), tmp_path / "watch.har")
    yield opened
    if not opened.page.is_closed():
        opened.context.close()


def test_a_clean_page_passes(watch: PageWatch, site: str) -> None:
    watch.page.goto(f"{site}/plain")
    watch.check()
    watch.close()
    assert watch.responses_checked == 1


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/styled", "/leaky.css (200) contains a secret"),
        ("/header", "/header (200) contains a secret"),
        ("/cookie", "/cookie (200) contains a secret"),
        ("/framed", "/leaky-frame (200) contains a secret"),
    ],
)
def test_a_secret_in_any_response_fails_at_the_close(
    watch: PageWatch, site: str, path: str, complaint: str
) -> None:
    watch.page.goto(f"{site}{path}")
    watch.page.wait_for_load_state("networkidle")
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        watch.close()


def test_a_page_left_at_once_is_still_checked(watch: PageWatch, site: str) -> None:
    watch.page.goto(f"{site}/leaky-frame")
    watch.page.goto(f"{site}/plain")
    with pytest.raises(AssertionError, match="/leaky-frame \\(200\\)"):
        watch.close()  # its secret found, or its body missing: either fails


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/framed", "the page at http://127.0.0.1:{port}/leaky-frame contains a secret"),
        ("/script-error", "undefined_function is not defined"),
        ("/csp", "Content Security Policy"),
    ],
)
def test_a_problem_on_the_page_fails_the_check(
    watch: PageWatch, site: str, path: str, complaint: str
) -> None:
    watch.page.goto(f"{site}{path}")
    watch.page.wait_for_load_state("networkidle")
    complaint = complaint.format(port=site.rsplit(":", 1)[1])
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        watch.check()


def test_a_page_wider_than_the_screen_fails_its_screenshot(
    watch: PageWatch, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser_support, "SCREENSHOTS", tmp_path)
    watch.page.goto(f"{site}/plain")
    assert watch.shoot("plain") == tmp_path / "plain-laptop.png"
    watch.page.goto(f"{site}/wide")
    with pytest.raises(AssertionError, match=r"wide is 20\d\d px wide on a 1280 px laptop"):
        watch.shoot("wide")
