"""What the browser tests share: Debian's Chromium found and launched, and a watch over each
page that checks what the browser received.

The browser is the system's Chromium (``MAILROOM_CHROMIUM``, default ``/usr/bin/chromium``),
launched by Playwright with ``executable_path``: no browser is downloaded, ever. Without it
the browser tests are skipped, unless ``MAILROOM_REQUIRE_BROWSER`` is set (``.ci/run`` sets
it), when they fail instead.

A :class:`PageWatch` opens one page in a fresh browser context and follows it:

- every response the page receives (documents, styles, scripts, frames, fetches, redirects)
  is recorded by Playwright in a HAR file, bodies included, and when the page is closed none
  may contain a watched secret, in its headers (``Set-Cookie`` too) or its body. A page (HTML)
  whose body was not recorded fails the test too; a static file whose body Chromium dropped
  before it was recorded (the test navigated on the instant it loaded) is only counted;
- the page as it is shown (its DOM and its frames') is checked at each screenshot and at the
  end of the test;
- every console error, uncaught exception and Content Security Policy violation is kept and
  fails the test. A "Failed to load resource" line about a *document* the page navigated to is
  not kept: an error status of a page is what the test asserts, and Chromium reports it there
  as well.

:meth:`PageWatch.shoot` saves a full-page screenshot to :data:`SCREENSHOTS` as
``<name>-laptop.png`` or ``<name>-phone.png`` (by the viewport it was opened with) and checks
the page and the console, and that the page is no wider than the screen.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Response,
)

from support.api_client import SecretWatch

__all__ = [
    "LAPTOP",
    "PHONE",
    "SCREENSHOTS",
    "PageWatch",
    "Viewport",
    "chromium_path",
    "launch_chromium",
]

SCREENSHOTS = Path(__file__).resolve().parents[1] / "browser" / "screenshots"
"""Where the screenshots go (ignored by git; the README names it)."""

DEFAULT_CHROMIUM = "/usr/bin/chromium"
_FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of")


@dataclass(frozen=True)
class Viewport:
    """A screen the pages are looked at on."""

    name: str
    width: int
    height: int
    scale: float = 1.0
    mobile: bool = False


LAPTOP = Viewport("laptop", 1280, 800)
PHONE = Viewport("phone", 390, 844, scale=2.0, mobile=True)


def chromium_path() -> str:
    """The Chromium to drive; skips the test (fails it when the browser is required) when it
    is not installed."""
    path = os.environ.get("MAILROOM_CHROMIUM", DEFAULT_CHROMIUM)
    if os.access(path, os.X_OK):
        return path
    reason = (
        f"no Chromium at {path} (MAILROOM_CHROMIUM): install Debian's package "
        "(apt-get install chromium) to run the browser tests"
    )
    if os.environ.get("MAILROOM_REQUIRE_BROWSER"):
        pytest.fail(f"the browser tests are required here: {reason}")
    pytest.skip(reason)


def launch_chromium(playwright: Playwright, path: str) -> Browser:
    """Headless Chromium from ``path``: Playwright's own browser builds are never used."""
    return playwright.chromium.launch(executable_path=path, headless=True)


@dataclass
class PageWatch:
    """A page in a fresh browser context (no cookies), the secrets it must never receive, and
    what went wrong on it so far."""

    context: BrowserContext
    page: Page
    viewport: Viewport
    secrets: SecretWatch
    har: Path
    console_errors: list[str] = field(default_factory=list)
    provoked: list[re.Pattern[str]] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)
    responses_checked: int = 0
    responses_unrecorded: int = 0

    @classmethod
    def open(
        cls, browser: Browser, viewport: Viewport, secrets: SecretWatch, har: Path, **options: Any
    ) -> PageWatch:
        """A new page at ``viewport``'s size whose responses are recorded in the HAR file
        ``har``; ``options`` go to ``browser.new_context`` (``base_url``)."""
        context = browser.new_context(
            viewport={"width": viewport.width, "height": viewport.height},
            device_scale_factor=viewport.scale,
            is_mobile=viewport.mobile,
            has_touch=viewport.mobile,
            # Playwright's own recorder reads every body as it arrives; a handler in this
            # process would race the test's next navigation, after which Chromium has
            # forgotten the previous document's resources.
            record_har_path=har,
            record_har_content="embed",
            **options,
        )
        return cls(context, context.new_page(), viewport, secrets, har)

    def __post_init__(self) -> None:
        self.page.on("response", self._note_document)
        self.page.on("console", self._check_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    def _note_document(self, response: Response) -> None:
        if response.request.is_navigation_request() and response.frame == self.page.main_frame:
            self.documents.add(response.url)

    def expect_console_errors(self, *patterns: str) -> None:
        """Console errors matching one of ``patterns`` (regular expressions) are what the test
        provokes on purpose, such as the browser's report that it blocked a message's script:
        not failures. Every other error still is."""
        self.provoked.extend(re.compile(pattern) for pattern in patterns)

    def _check_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if any(pattern.search(message.text) for pattern in self.provoked):
            return
        url = message.location.get("url", "")
        if _FAILED_LOAD.match(message.text) and (
            url in self.documents or urlsplit(url).path == "/favicon.ico"
        ):
            # A page answered an error status (the test asserts that status itself), or the
            # browser looked for an icon of its own accord (the pages name none).
            return
        self.console_errors.append(f"{message.text} (at {url or 'the page'})")

    def _leaks(self, text: str, where: str) -> list[str]:
        return [f"{where} contains a secret" for secret in self.secrets.secrets if secret in text]

    # -- checks --------------------------------------------------------------------------

    def check(self) -> None:
        """Fail if the page as it is now (and each frame in it) holds a secret, or the console
        showed an error since the last check."""
        leaks = [
            leak
            for frame in self.page.frames
            for leak in self._leaks(frame.content(), f"the page at {frame.url}")
        ]
        errors, self.console_errors = self.console_errors, []  # each reported once
        assert not leaks, "\n".join(leaks)
        assert not errors, "errors in the console:\n" + "\n".join(errors)

    def shoot(self, name: str) -> Path:
        """Save a full-page screenshot as ``SCREENSHOTS/<name>-<laptop|phone>.png`` once the
        page has loaded, and :meth:`check` it."""
        # "load", not "networkidle": a page that polls or holds an event stream open is never
        # idle; what it loads later is checked at the end all the same.
        self.page.wait_for_load_state("load")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{self.viewport.name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.check()
        # Readable at this width: the page itself never scrolls sideways (a wide table scrolls
        # inside its own box).
        width = self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= self.viewport.width, (
            f"{name} is {width} px wide on a {self.viewport.width} px {self.viewport.name} screen"
        )
        return path

    def close(self) -> None:
        """Close the context, then fail if any response it received, in its headers or body,
        held a secret (the HAR file is complete only once the context is closed)."""
        self.context.close()
        leaks: list[str] = []
        for entry in json.loads(self.har.read_text(encoding="utf-8"))["log"]["entries"]:
            response = entry["response"]
            where = f"{entry['request']['method']} {entry['request']['url']} ({response['status']})"
            headers = "\n".join(f"{h['name']}: {h['value']}" for h in response["headers"])
            leaks += self._leaks(headers, where)
            content = response["content"]
            if "text" not in content and content.get("size", 0) and response["status"] < 300:
                # Chromium dropped it (the test moved on at once) before it was recorded.
                if content.get("mimeType", "").startswith("text/html"):
                    leaks.append(f"{where}: a page whose body was not recorded to be checked")
                else:  # a static file, the same for every page: checked where it was recorded
                    self.responses_unrecorded += 1
                continue
            body = content.get("text", "")
            if content.get("encoding") == "base64":
                body = base64.b64decode(body).decode("utf-8", "replace")
            leaks += self._leaks(body, where)
            self.responses_checked += 1
        assert not leaks, "\n".join(leaks)
