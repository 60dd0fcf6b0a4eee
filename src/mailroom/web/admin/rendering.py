"""How admin pages are rendered: the admin's own Jinja2 environment (autoescaped; separate
from the notification sandbox, which renders untrusted templates), its filters, the context
every page gets, the security headers, and one-shot notices (:func:`flash`).

The CSP allows this site's own scripts, styles and frames only: no inline script or style,
nothing from elsewhere. Message HTML is never put into a page: it goes into a sandboxed
iframe from its own URL, which answers with its own stricter CSP.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailroom.web.admin.sessions import admin_path, read_session

__all__ = [
    "ADMIN_HEADERS",
    "APP_NAME",
    "FLASH_COOKIE",
    "NavEntry",
    "ago",
    "filesize",
    "flash",
    "format_datetime",
    "render_page",
    "templates",
]

APP_NAME = "Mailroom"
FLASH_COOKIE = "mailroom_flash"
_FLASH_KINDS = frozenset({"info", "success", "error"})
_FLASH_MAX_BYTES = 2048
"""The most bytes a notice's cookie holds before base64 (its JSON, in UTF-8): a longer message
is cut to fit, and a cookie longer than this many bytes encode to is not one of ours. Under a
browser's 4 KiB per cookie even in base64, and room for 500 characters of any script."""
_FLASH_MAX_COOKIE = 4 * math.ceil(_FLASH_MAX_BYTES / 3)  # base64 of that many bytes

ADMIN_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class NavEntry(NamedTuple):
    """One link of the top bar: ``key`` is what ``render_page(nav=...)`` names, ``path`` is
    under the admin prefix (``"/messages"``; ``"/"`` for the status page)."""

    key: str
    label: str
    path: str


def format_datetime(epoch: float | None) -> str:
    """``2026-12-07 14:03:12 UTC``; an empty string for no time."""
    if epoch is None:
        return ""
    try:
        return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return str(epoch)


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def ago(epoch: float | None, now: float | None = None) -> str:
    """``3 minutes ago`` (``in 5 minutes`` for a time to come, ``just now`` within a
    second); an empty string for no time."""
    if epoch is None:
        return ""
    delta = (time.time() if now is None else now) - float(epoch)
    seconds = abs(delta)
    if seconds < 1:
        return "just now"
    for unit, size in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            text = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"{text} ago" if delta > 0 else f"in {text}"
    return "just now"  # pragma: no cover - the loop ends at one second


def filesize(size: int | None) -> str:
    """``512 B``, ``1.5 KB``, ``23.0 MB`` (powers of 1024); empty for no size."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns at GB


def thousands(value: int) -> str:
    """``1,000``: a count with its thousands apart."""
    return f"{value:,}"


def stored_value(value: object) -> str:
    """A value from a stored detail (JSON) as a person reads it: ``on``/``off`` for a
    switch, not Python's ``True``/``False``; a list as its items, comma-separated."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(stored_value(item) for item in value)
    return str(value)


templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["datetime"] = format_datetime
templates.filters["ago"] = ago
templates.filters["filesize"] = filesize
templates.filters["stored_value"] = stored_value
templates.filters["thousands"] = thousands


def render_page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
    nav: str,
) -> HTMLResponse:
    """``admin/<template>`` rendered with ``context`` and what every page needs: ``user``
    (``None`` when signed out), ``csrf_token``, ``nav`` (the active entry's key),
    ``nav_entries``, ``app_name``, ``prefix`` (the admin's URL path, for links), ``static``
    (that of its static files) and ``flash`` (a notice left by the last POST, or ``None``)."""
    prefix = admin_path(request)
    session = read_session(request)
    notice = _read_flash(request)
    entries: Sequence[NavEntry] = getattr(request.state, "admin_nav_entries", ())
    body = templates.get_template(f"admin/{template}").render(
        {
            **context,
            "user": getattr(request.state, "admin_user", None),
            "csrf_token": "" if session is None else session.csrf_token,
            "nav": nav,
            "nav_entries": entries,
            "app_name": APP_NAME,
            "prefix": prefix,
            "static": f"{prefix}/static",
            "flash": notice,
        }
    )
    response = HTMLResponse(body, status_code=status_code, headers=dict(ADMIN_HEADERS))
    if notice is not None:
        response.delete_cookie(FLASH_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def flash(response: Response, message: str, kind: str = "success") -> None:
    """Leave ``message`` for the next admin page this browser shows (after a POST's redirect):
    ``kind`` is ``success``, ``info`` or ``error``."""
    if kind not in _FLASH_KINDS:
        raise ValueError(f"kind: one of {sorted(_FLASH_KINDS)}, not {kind!r}")
    value = base64.urlsafe_b64encode(_flash_payload(message, kind)).decode("ascii")
    response.set_cookie(FLASH_COOKIE, value, max_age=120, path="/", httponly=True, samesite="lax")


def _flash_payload(message: str, kind: str) -> bytes:
    """The notice as UTF-8 JSON of at most :data:`_FLASH_MAX_BYTES`, its message cut to fit
    (a character takes 1 to 6 bytes: 4 in UTF-8, 6 for a control character's escape)."""
    message = message[:_FLASH_MAX_BYTES]
    while True:
        payload = json.dumps({"m": message, "k": kind}, ensure_ascii=False).encode()
        over = len(payload) - _FLASH_MAX_BYTES
        if over <= 0:
            return payload
        message = message[: -max(1, over // 6)]


def _read_flash(request: Request) -> Mapping[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > _FLASH_MAX_COOKIE:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(data, dict):
        return None
    message, kind = data.get("m"), data.get("k")
    if not isinstance(message, str) or kind not in _FLASH_KINDS:
        return None
    return {"message": message, "kind": str(kind)}
