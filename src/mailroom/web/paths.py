"""The service's URL paths, kept apart from the app so that the CLI can name them without
loading the web stack."""

from __future__ import annotations

__all__ = ["ADMIN_PREFIX", "API_PREFIX"]

API_PREFIX = "/api/v1"
"""Where the HTTP API lives (its OpenAPI document and docs too)."""

ADMIN_PREFIX = "/admin"
"""Where the admin pages live (their static files under ``/admin/static``)."""
