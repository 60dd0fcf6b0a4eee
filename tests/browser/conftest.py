"""The browser tests' fixtures: one headless Chromium for the whole run, one ``mailroom serve``
per test module, and fresh pages at laptop and phone sizes, each watched (see
:mod:`support.browser`): a page that received a secret or logged an error fails its test; and
:func:`shoot_whole`, the screenshot of a page with a sandboxed frame (a message's preview)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support.browser import LAPTOP, PHONE, PageWatch, Viewport, chromium_path, launch_chromium
from support.browser_site import Site, running_site

Shoot = Callable[[Page, str], Path]

SANDBOXED_FRAME = "iframe[sandbox]"
"""A frame whose content is painted only while it is in the viewport: a message's HTML, captured
mail's, a template's preview."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API keeps an event loop running in the
    # main thread while it is started, and every later test that calls asyncio.run() there
    # (the CLI's, run in-process) would fail with "cannot be called from a running event loop".
    path = chromium_path()
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, path)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("site")) as running:
        yield running


@pytest.fixture
def watches() -> dict[int, PageWatch]:
    """The watch of every page this test opened, by the page's ``id``."""
    return {}


def _watched_page(
    browser: Browser,
    site: Site,
    viewport: Viewport,
    watches: dict[int, PageWatch],
    tmp_path: Path,
) -> Iterator[Page]:
    har = tmp_path / f"{viewport.name}.har"
    watch = PageWatch.open(browser, viewport, site.watch, har, base_url=site.url)
    watches[id(watch.page)] = watch
    try:
        yield watch.page
        watch.check()
    finally:
        watch.close()  # and every response the page received is checked


@pytest.fixture
def page(
    browser: Browser, site: Site, watches: dict[int, PageWatch], tmp_path: Path
) -> Iterator[Page]:
    """A page in a fresh context (no cookies) on a 1280 x 800 laptop screen."""
    yield from _watched_page(browser, site, LAPTOP, watches, tmp_path)


@pytest.fixture
def phone_page(
    browser: Browser, site: Site, watches: dict[int, PageWatch], tmp_path: Path
) -> Iterator[Page]:
    """A page in a fresh context on a 390 x 844 phone (scale 2, touch)."""
    yield from _watched_page(browser, site, PHONE, watches, tmp_path)


@pytest.fixture
def shoot(watches: dict[int, PageWatch]) -> Shoot:
    """``shoot(page, name)``: save ``screenshots/<name>-<laptop|phone>.png`` and check the page
    (no secret in it or in anything it loaded, no console error)."""

    def take(page: Page, name: str) -> Path:
        return watches[id(page)].shoot(name)

    return take


def shoot_whole(page: Page, name: str, shoot: Shoot) -> None:
    """Shoot ``page`` with its sandboxed frames painted: Chromium does not draw a sandboxed
    frame outside the viewport, even in a full-page screenshot, so the viewport is made as tall
    as the page for the shot (its width, which the pages must fit, stays)."""
    size = page.viewport_size
    assert size is not None
    if page.locator(SANDBOXED_FRAME).count():
        tall = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": max(tall, size["height"])})
        expect(page.frame_locator(SANDBOXED_FRAME).first.locator("body")).to_be_attached()
    try:
        shoot(page, name)
    finally:
        page.set_viewport_size(size)
