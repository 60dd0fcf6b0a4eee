"""Access: who may call Mailroom's HTTP API.

- :mod:`~mailroom.access.apikeys`: API keys — made once and shown once, stored as a digest,
  checked per request, listed and revoked by an operator;
- :mod:`~mailroom.access.queries`: their SQL.
"""

from __future__ import annotations

from mailroom.access.apikeys import (
    ApiKey,
    ApiKeyError,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    touch_api_key,
)

__all__ = [
    "ApiKey",
    "ApiKeyError",
    "authenticate",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
    "touch_api_key",
]
