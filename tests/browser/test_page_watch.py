"""The page watch itself: a secret in anything the page loaded, a script error or a Content
Security Policy violation each fail the check (served by Playwright's router, no service)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route

from support.api_client import SecretWatch
from support.browser import LAPTOP, PageWatch

SECRET = "watch-test-secret-4f1b"
SITE = "http://watch.test"
PAGES = {
    "/plain": ("<title>Plain</title><p>Nothing to see</p>", {}),
    "/styled": ('<link rel="stylesheet" href="/leaky.css"><p>Styled</p>', {}),
    "/leaky.css": (f"/* {SECRET} */ p {{ color: red }}", {"Content-Type": "text/css"}),
    "/header": ("<p>Fine body</p>", {"X-Debug": SECRET}),
    "/script-error": ("<script>undefined_function()</script>", {}),
    "/csp": (
        "<p style='color: red'>inline style</p>",
        {"Content-Security-Policy": "default-src 'none'"},
    ),
}


def serve(route: Route) -> None:
    body, headers = PAGES[route.request.url.removeprefix(SITE)]
    route.fulfill(status=200, body=body, headers={"Content-Type": "text/html", **headers})


@pytest.fixture
def watched(browser: Browser) -> Iterator[tuple[Page, PageWatch]]:
    context = browser.new_context()
    page = context.new_page()
    page.route(f"{SITE}/**", serve)
    yield page, PageWatch(page, LAPTOP, SecretWatch([SECRET]))
    context.close()


def test_a_clean_page_passes(watched: tuple[Page, PageWatch]) -> None:
    page, watch = watched
    page.goto(f"{SITE}/plain")
    watch.check()
    assert watch.responses_checked == 1


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("/styled", "/leaky.css (200) contains a secret"),
        ("/header", "/header (200) contains a secret"),
        ("/script-error", "undefined_function is not defined"),
        ("/csp", "Content Security Policy"),
    ],
)
def test_a_problem_fails_the_check_once(
    watched: tuple[Page, PageWatch], path: str, complaint: str
) -> None:
    page, watch = watched
    page.goto(f"{SITE}{path}")
    page.wait_for_load_state("networkidle")
    with pytest.raises(AssertionError, match=re.escape(complaint)):
        watch.check()
    watch.check()  # reported once: the page fixture's final check does not repeat it
