"""The HTTP API under ``/api/v1``: one module per resource, each a router of thin routes that
validate and call the operations the CLI calls (no SQL here)."""

from __future__ import annotations

from fastapi import APIRouter

from mailroom.web.api import (
    batch,
    campaigns,
    captured,
    messages,
    notifications,
    preferences,
    status,
    suppressions,
)

__all__ = ["router"]

router = APIRouter()
# The batch route first: "/messages/batch" must not be read as "/messages/{id}".
for module in (
    batch,
    messages,
    notifications,
    preferences,
    status,
    suppressions,
    captured,
    campaigns,
):
    router.include_router(module.router)
