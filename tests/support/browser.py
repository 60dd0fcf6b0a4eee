"""What the browser tests share: Debian's Chromium found and launched, and a watch over each
page that checks what the browser received.

The browser is the system's Chromium (``MAILROOM_CHROMIUM``, default ``/usr/bin/chromium``),
launched by Playwright with ``executable_path``: no browser is downloaded, ever. Without it
the browser tests are skipped, unless ``MAILROOM_REQUIRE_BROWSER`` is set (``.ci/run`` sets
it), when they fail instead.

A :class:`PageWatch` follows one page from its creation:

- every response the page loads (documents, styles, scripts, frames, fetches) is read as it
  arrives and must not contain a watched secret, in its headers (``Set-Cookie`` too) or its
  body (a body is read at once because Chromium forgets the previous document's resources
  once it navigates);
- every console error, uncaught exception and Content Security Policy violation is kept and
  fails the test. A "Failed to load resource" line about a *document* the page navigated to is
  not kept: an error status of a page is what the test asserts, and Chromium reports it there
  as well.

:meth:`PageWatch.shoot` saves a full-page screenshot to :data:`SCREENSHOTS` as
``<name>-laptop.png`` or ``<name>-phone.png`` (by the viewport it was opened with) and checks
the current DOM of the page and of its frames, every response so far and the console.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright, Response

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
_NO_BODY = {204, 205, 304}
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
    """The secrets one page must never receive, and what went wrong on it so far."""

    page: Page
    viewport: Viewport
    secrets: SecretWatch
    leaks: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    documents: set[str] = field(default_factory=set)
    responses_checked: int = 0

    def __post_init__(self) -> None:
        self.page.on("response", self._check_response)
        self.page.on("console", self._check_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))

    # -- as the page loads -------------------------------------------------------------

    def _check_response(self, response: Response) -> None:
        request = response.request
        if request.is_navigation_request() and response.frame == self.page.main_frame:
            self.documents.add(response.url)
        where = f"{request.method} {response.url} ({response.status})"
        headers = response.headers_array()  # every header, Set-Cookie too
        self._check_text("\n".join(f"{h['name']}: {h['value']}" for h in headers), where)
        if 300 <= response.status < 400 or response.status in _NO_BODY:
            self.responses_checked += 1
            return  # Chromium keeps no body of a redirect
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            self.responses_checked += 1
            return  # a stream of events has no end to wait for; its headers were checked
        try:
            body = response.body()
        except Error as exc:
            self.leaks.append(f"{where}: its body could not be read to check it: {exc.message}")
            return
        self._check_text(body.decode("utf-8", "replace"), where)
        self.responses_checked += 1

    def _check_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "")
        if _FAILED_LOAD.match(message.text) and (
            url in self.documents or urlsplit(url).path == "/favicon.ico"
        ):
            # A page answered an error status (the test asserts that status itself), or the
            # browser looked for an icon of its own accord (the pages name none).
            return
        self.console_errors.append(f"{message.text} (at {url or 'the page'})")

    def _check_text(self, text: str, where: str) -> None:
        for secret in self.secrets.secrets:
            if secret in text:
                self.leaks.append(f"{where} contains a secret")

    # -- checks --------------------------------------------------------------------------

    def check(self) -> None:
        """Fail if any response so far, or the page as it is now, held a secret, or the console
        showed an error."""
        for frame in self.page.frames:  # the page and any frame in it, as they are now
            self._check_text(frame.content(), f"the page at {self.page.url} (frame {frame.url})")
        # Each problem is reported once: the page fixture checks again at teardown.
        leaks, self.leaks = self.leaks, []
        errors, self.console_errors = self.console_errors, []
        assert not leaks, "\n".join(leaks)
        assert not errors, "errors in the console:\n" + "\n".join(errors)

    def shoot(self, name: str) -> Path:
        """Save a full-page screenshot as ``SCREENSHOTS/<name>-<laptop|phone>.png`` once the
        page has loaded, and :meth:`check` it."""
        # "load", not "networkidle": a page that polls or holds an event stream open is never
        # idle; what it loads later is checked as it arrives all the same.
        self.page.wait_for_load_state("load")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}-{self.viewport.name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.check()
        return path
