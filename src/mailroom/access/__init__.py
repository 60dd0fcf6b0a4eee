"""Access: who may call Mailroom's HTTP API and sign in to its admin pages.

- :mod:`~mailroom.access.apikeys`: API keys — made once and shown once, stored as a digest,
  checked per request, listed and revoked by an operator;
- :mod:`~mailroom.access.queries`: their SQL;
- :mod:`~mailroom.access.passwords`: scrypt password hashes;
- :mod:`~mailroom.access.admin_users`: admin accounts (:mod:`~mailroom.access.admin_queries`:
  their SQL).
"""

from __future__ import annotations

from mailroom.access.admin_users import (
    AdminUser,
    AdminUserError,
    check_login,
    create_user,
    end_sessions,
    ensure_first_admin,
    list_users,
    set_password,
    user_by_id,
)
from mailroom.access.apikeys import (
    ApiKey,
    ApiKeyError,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    touch_api_key,
)
from mailroom.access.passwords import hash_password, verify_password

__all__ = [
    "AdminUser",
    "AdminUserError",
    "ApiKey",
    "ApiKeyError",
    "authenticate",
    "check_login",
    "create_api_key",
    "create_user",
    "end_sessions",
    "ensure_first_admin",
    "hash_password",
    "list_api_keys",
    "list_users",
    "revoke_api_key",
    "set_password",
    "touch_api_key",
    "user_by_id",
    "verify_password",
]
