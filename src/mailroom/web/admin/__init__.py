"""The admin pages under ``/admin/``: sign-in, sessions, CSRF, the page layout, and the
routers of the pages listed in :mod:`.pages`.

Every page needs a session (:data:`~.auth.CurrentAdmin`); only the login form does not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request

from mailroom.web.admin import status
from mailroom.web.admin.login import login_router
from mailroom.web.admin.pages import NAV_ORDER, PAGE_ROUTERS
from mailroom.web.admin.rendering import NavEntry

__all__ = ["STATIC_DIRECTORY", "admin_router", "nav_entries"]

STATIC_DIRECTORY = Path(__file__).parent.parent / "static" / "admin"
"""The admin's CSS and JavaScript, served at ``/admin/static``."""


def nav_entries() -> tuple[NavEntry, ...]:
    """The top bar: every page's entry, in :data:`NAV_ORDER`."""
    entries: dict[str, NavEntry] = {}
    for _router, entry in PAGE_ROUTERS:
        if entry is not None:
            nav = NavEntry(*entry)
            entries[nav.key] = nav
    known = [entries[key] for key in NAV_ORDER if key in entries]
    return (*known, *(e for key, e in entries.items() if key not in NAV_ORDER))


def admin_router() -> APIRouter:
    """The admin's routes, to mount under ``/admin``: the pages, then sign-in; ``/admin``
    itself leads to the status page at ``/admin/``."""
    entries = nav_entries()

    def navigation(request: Request) -> None:
        request.state.admin_nav_entries = entries

    router = APIRouter(dependencies=[Depends(navigation)], include_in_schema=False)
    for page_router, _entry in PAGE_ROUTERS:
        router.include_router(page_router)
    router.include_router(login_router())
    # Added here, not in the status page's router: a route with an empty path can only be
    # added to the router that is mounted with the prefix.
    router.add_api_route("", status.bare_prefix, methods=["GET"], include_in_schema=False)
    return router
