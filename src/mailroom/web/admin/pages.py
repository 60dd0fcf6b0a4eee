"""The admin's pages: each page module's router and its entry in the top bar.

A page module adds ONE line to :data:`PAGE_ROUTERS`: ``(its_module.router, NavEntry(key,
label, path))``, or ``(router, None)`` for routes with no entry of their own (an admin JSON
API). Routes are matched in this order, before the foundation's own (login).

The top bar shows the entries in :data:`NAV_ORDER`'s order (others after them, as listed).
"""

from __future__ import annotations

from fastapi import APIRouter

from mailroom.web.admin import (
    apikeys,
    campaign_actions,
    campaign_page,
    campaigns,
    captured,
    messages,
    status,
    suppressions,
    templates_pages,
)
from mailroom.web.admin.rendering import NavEntry

__all__ = ["NAV_ORDER", "PAGE_ROUTERS"]

NAV_ORDER = (
    "status",
    "messages",
    "campaigns",
    "captured",
    "suppressions",
    "templates",
    "apikeys",
)
"""The keys of the top bar's entries, in the order they are shown."""

PAGE_ROUTERS: list[tuple[APIRouter, NavEntry | tuple[str, str, str] | None]] = [
    (status.router, status.STATUS_ENTRY),
    (messages.router, messages.MESSAGES_ENTRY),
    # The editor's routes first: /campaigns/new is not the page of a campaign numbered "new".
    (campaigns.router, campaigns.CAMPAIGNS_ENTRY),
    (campaign_actions.router, None),
    (campaign_page.router, None),
    (captured.router, NavEntry("captured", "Captured", "/captured")),
    (suppressions.router, NavEntry("suppressions", "Suppressions", "/suppressions")),
    (templates_pages.router, templates_pages.TEMPLATES_ENTRY),
    (apikeys.router, apikeys.APIKEYS_ENTRY),
]
