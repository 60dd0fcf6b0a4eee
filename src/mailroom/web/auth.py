"""Who is calling the API: ``Authorization: Bearer KEY``, checked by :mod:`mailroom.access`.

A missing, malformed, unknown or revoked key all get the same 401 body (and
``WWW-Authenticate: Bearer``), so an answer never tells a guessed key from a revoked one. A
``send`` key may send and read back what it sent; anything else needs an ``admin`` key (403).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Engine

from mailroom.access.apikeys import ApiKey, authenticate, needs_touch, touch_api_key
from mailroom.outbox.vocabulary import ApiKeyScope
from mailroom.web.dependencies import DatabaseEngine, ReadEngine
from mailroom.web.errors import ApiError

__all__ = ["AdminKey", "Caller", "authenticate_header", "require_admin", "unauthorized"]

_BEARER = "bearer "
_KEY_MAX = 200  # far above any key Mailroom makes; a longer header is not looked up

# Declares the scheme in the OpenAPI document (the "Authorize" button of the docs); the
# header itself is read below, so every failure answers with the one body.
_scheme = HTTPBearer(auto_error=False, description="An API key: `mailroom apikeys create`.")


def unauthorized() -> ApiError:
    """The one answer for every key that does not authenticate."""
    return ApiError(
        401,
        "unauthorized",
        "a valid API key is needed: send it as 'Authorization: Bearer KEY'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate_header(header: str, engine: Engine, reader: Engine) -> ApiKey:
    """The API key an ``Authorization`` header's value presents, or the one 401: what
    :data:`Caller` resolves, callable without FastAPI's dependency machinery (the send
    routes call it in the thread that commits). Blocking: reads the key, and at most once a
    minute per key records its use."""
    if not header[: len(_BEARER)].lower() == _BEARER:
        raise unauthorized()
    presented = header[len(_BEARER) :].strip()
    if not presented or len(presented) > _KEY_MAX or not presented.isascii():
        raise unauthorized()
    now = time.time()
    with reader.connect() as connection:
        key = authenticate(connection, presented, now)
    if key is None:
        raise unauthorized()
    if needs_touch(key, now):  # a write at most once a minute per key, not one per request
        with engine.begin() as connection:
            touch_api_key(connection, key, now)
    return key


def caller_of(
    request: Request,
    engine: DatabaseEngine,
    reader: ReadEngine,
    _declared: Annotated[object, Depends(_scheme)] = None,
) -> ApiKey:
    return authenticate_header(request.headers.get("authorization", ""), engine, reader)


Caller = Annotated[ApiKey, Depends(caller_of)]
"""The API key of the request (any scope)."""


async def require_admin(caller: Caller) -> ApiKey:
    if caller.scope != ApiKeyScope.ADMIN:
        raise ApiError(403, "forbidden", "this needs an admin API key; this key may only send")
    return caller


AdminKey = Annotated[ApiKey, Depends(require_admin)]
"""The API key of the request, which must have the ``admin`` scope."""
