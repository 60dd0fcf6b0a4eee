"""Who is signed in: :data:`CurrentAdmin`, the dependency of every admin page and admin API.

A page request without a valid session is sent (303) to the login page with where it was
going in ``next``; an admin JSON endpoint (``/admin/api/...``) gets 401 instead, as a
script cannot follow a login form. ``next`` is only ever a path under the admin's own
(:func:`safe_next`), so the login page cannot be made to send anyone to another site.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse

from mailroom.access import AdminUser, user_by_id
from mailroom.web.admin.interruptions import AdminInterruption
from mailroom.web.admin.sessions import admin_path, read_session
from mailroom.web.errors import error_response

__all__ = ["CurrentAdmin", "current_admin", "safe_next", "signed_in_admin"]


def current_admin(request: Request) -> AdminUser:
    """The signed-in account (a live one), or the answer that asks for a sign-in.

    A plain ``def``: FastAPI runs it in a worker thread, as it reads the database."""
    user = signed_in_admin(request)
    if user is None:
        raise AdminInterruption(_sign_in_first(request))
    return user


def signed_in_admin(request: Request) -> AdminUser | None:
    """The live account of the request's session, if any, kept for the page layout (its
    navigation): also for a page that does not need a sign-in, as a refused form's. Reads
    the database: call it from a worker thread."""
    known: AdminUser | None = getattr(request.state, "admin_user", None)
    if known is not None:
        return known
    session = read_session(request)
    if session is None or session.user_id is None:
        return None
    with request.app.state.read_engine.connect() as connection:
        user = user_by_id(connection, session.user_id)
    if user is None or user.session_epoch != session.epoch:
        # A session of an older epoch was ended by a sign-out or a new password.
        return None
    request.state.admin_user = user
    return user


CurrentAdmin = Annotated[AdminUser, Depends(current_admin)]


def safe_next(request: Request, target: str | None) -> str:
    """``target`` if it is a path under the admin pages of this site, else the admin's home.

    Refused: full URLs (``https://evil.example``), scheme-relative ones (``//evil``),
    backslashes (browsers read ``/\\evil`` as ``//evil``), control characters and paths
    outside the admin pages."""
    home = admin_path(request) + "/"
    if not target or len(target) > 2000:
        return home
    if "\\" in target or any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return home
    if not (parts.path == home.rstrip("/") or parts.path.startswith(home)):
        return home
    if "/../" in parts.path or parts.path.endswith("/.."):
        return home
    return target


def _sign_in_first(request: Request) -> JSONResponse | RedirectResponse:
    prefix = admin_path(request)
    if request.url.path.startswith(f"{prefix}/api/"):
        return error_response(
            401,
            "unauthorized",
            "this needs an admin session: sign in at /admin/login first",
            headers={"Cache-Control": "no-store"},
        )
    wanted = request.url.path
    if request.url.query:
        wanted += f"?{request.url.query}"
    location = f"{prefix}/login?next={quote(safe_next(request, wanted), safe='/')}"
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
