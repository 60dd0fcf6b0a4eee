"""How the public pages answer: templates, security headers, the one 404, and the CSRF token of
the preference form.

Every page carries headers that keep the token in its URL to this site: no ``Referer`` leaves
it (``Referrer-Policy: no-referrer``), it cannot be framed (``frame-ancestors 'none'`` and
``X-Frame-Options: DENY``), runs no script at all (a CSP with no script source; the pages
need none), and is not cached (``no-store``: it shows one person's choices).

The CSRF token of the preference form needs no cookie: it is the page's own token, hashed,
signed with ``SECRET_KEY`` under a salt of its own, with the time. A POST is accepted only
with a CSRF token made for the same page token within :data:`CSRF_MAX_AGE`. Another site
cannot make one (it lacks the key) nor read one from our page (the same-origin policy), so a
form it plants cannot change anyone's preferences even if it somehow knew the page token; a
leaked form copy stops working after a few hours.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from itsdangerous import BadData, TimestampSigner
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailroom.compose.headers import app_name
from mailroom.config import Settings
from mailroom.message import Address

__all__ = [
    "CSRF_MAX_AGE",
    "PAGE_HEADERS",
    "STYLESHEET",
    "check_csrf",
    "make_csrf",
    "not_found",
    "render",
]

_HERE = Path(__file__).parent
STYLESHEET = (_HERE / "static" / "public" / "mailroom.css").read_bytes()
CSRF_MAX_AGE = 6 * 3600
"""Seconds a preference form may be saved after it was shown."""
_CSRF_SALT = "mailroom.preferences.csrf.v1"

PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=FileSystemLoader(_HERE / "templates" / "public"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)


def not_found(request: Request) -> HTMLResponse:
    """The one 404 of the public endpoints: the same bytes for every bad, expired or altered
    token, so that no answer differs from another by anything that could tell an address or a
    token apart. They depend only on the path the service is served under (its stylesheet's)."""
    body = _not_found_body(_root(request))
    return HTMLResponse(body, status_code=404, headers=dict(PAGE_HEADERS))


@functools.lru_cache(maxsize=8)
def _not_found_body(root: str) -> bytes:
    page = _templates.get_template("not_found.html")
    return page.render({"stylesheet": _stylesheet(root)}).encode()


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _stylesheet(root: str) -> str:
    return f"{root}/static/public/mailroom.css"


def render(
    request: Request, name: str, context: Mapping[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A page from ``web/templates/public``, with the security headers."""
    settings: Settings = request.app.state.settings
    root = _root(request)
    body = _templates.get_template(name).render(
        {
            **context,
            "app_name": _app_name(settings),
            "stylesheet": _stylesheet(root),
            "root": root,
        }
    )
    return HTMLResponse(body, status_code=status, headers=dict(PAGE_HEADERS))


def _app_name(settings: Settings) -> str:
    try:
        return app_name(Address.parse(settings.DEFAULT_FROM_EMAIL, "DEFAULT_FROM_EMAIL"))
    except ValueError:
        return "us"


def _signer(settings: Settings) -> TimestampSigner:
    secret = settings.secret_key("sign the preference form")
    return TimestampSigner(secret, salt=_CSRF_SALT, digest_method=hashlib.sha256)


def _bound(page_token: str) -> str:
    return hashlib.sha256(page_token.encode()).hexdigest()[:32]


def make_csrf(settings: Settings, page_token: str) -> str:
    """The CSRF token of a preference form shown for ``page_token``."""
    return _signer(settings).sign(_bound(page_token)).decode()


def check_csrf(settings: Settings, page_token: str, csrf: object) -> bool:
    """Whether ``csrf`` was made for ``page_token`` within :data:`CSRF_MAX_AGE`."""
    if not isinstance(csrf, str) or len(csrf) > 200:
        return False
    try:
        value = _signer(settings).unsign(csrf, max_age=CSRF_MAX_AGE)
    except BadData:
        return False
    return hmac.compare_digest(value, _bound(page_token).encode())
