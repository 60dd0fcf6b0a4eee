"""``GET /admin/``: a minimal home until the status page takes that path (the status page's
router is included before this one, so its ``/`` wins as soon as it is listed in
:data:`~mailroom.web.admin.pages.PAGE_ROUTERS`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from mailroom.config import Settings
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.rendering import NavEntry, render_page
from mailroom.web.admin.sessions import admin_path

__all__ = ["STATUS_ENTRY", "router"]

STATUS_ENTRY = NavEntry("status", "Status", "/")

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, user: CurrentAdmin) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    return render_page(
        request,
        "landing.html",
        {"transport": settings.MAILROOM_TRANSPORT.value, "signed_in_as": user.username},
        nav="status",
    )


def bare_prefix(request: Request) -> RedirectResponse:
    """``/admin`` without its slash: to ``/admin/`` (a relative path, never built from the
    Host header). Registered by the admin router itself: an included router cannot have an
    empty path."""
    return RedirectResponse(f"{admin_path(request)}/", status_code=308)
