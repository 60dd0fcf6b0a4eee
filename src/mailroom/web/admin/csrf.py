"""CSRF protection of every admin POST: :data:`CheckedForm` for forms, :func:`check_csrf_header`
for ``fetch()`` calls.

The session (or the pre-session of the login page) holds a random token; every form carries
it in a hidden ``csrf_token`` field, every script call in the ``X-CSRF-Token`` header.
Another site can make a browser send a form here but cannot read our pages to learn the
token, so its POST is refused (403) whatever cookies ride along. ``SameSite=Lax`` on the
session cookie is a second fence, not the only one.

The form is read with bounds: 1 MiB for a urlencoded form, 10 MiB for a multipart one (the
CSV import), counted as the bytes arrive, whatever ``Content-Length`` claims.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import Message

from mailroom.web.admin.auth import signed_in_admin
from mailroom.web.admin.interruptions import AdminInterruption
from mailroom.web.admin.rendering import render_page
from mailroom.web.admin.sessions import read_session
from mailroom.web.errors import error_response

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MULTIPART_MAX_BYTES",
    "URLENCODED_MAX_BYTES",
    "CheckedForm",
    "check_csrf_header",
    "checked_form",
    "read_bounded_form",
    "token_matches",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
URLENCODED_MAX_BYTES = 1024 * 1024
MULTIPART_MAX_BYTES = 10 * 1024 * 1024
_MAX_FIELDS = 1000
_MAX_FILES = 5


def token_matches(request: Request, presented: object) -> bool:
    """Whether ``presented`` is the CSRF token of the request's session (constant time)."""
    session = read_session(request)
    if session is None or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(presented.encode(), session.csrf_token.encode())


async def read_bounded_form(request: Request) -> FormData:
    """The request's form, read with the size bounds above (a 413 page past them)."""
    multipart = request.headers.get("content-type", "").startswith("multipart/form-data")
    limit = MULTIPART_MAX_BYTES if multipart else URLENCODED_MAX_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise AdminInterruption(_too_large(request, limit))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise AdminInterruption(_too_large(request, limit))
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return {"type": "http.disconnect"}
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    bounded = Request(request.scope, receive=replay)
    return await bounded.form(max_files=_MAX_FILES, max_fields=_MAX_FIELDS, max_part_size=limit)


async def checked_form(request: Request) -> AsyncIterator[FormData]:
    """The POST's form if its ``csrf_token`` is the session's; a 403 page otherwise. Its
    uploaded files are closed when the route is done."""
    form = await read_bounded_form(request)
    try:
        if not token_matches(request, form.get(CSRF_FIELD)):
            # Still signed in, perhaps (a stale tab's form): the page keeps the navigation.
            await run_in_threadpool(signed_in_admin, request)
            raise AdminInterruption(_expired(request))
        yield form
    finally:
        await form.close()


CheckedForm = Annotated[FormData, Depends(checked_form)]


def check_csrf_header(request: Request) -> None:
    """For a ``fetch()`` call: a 403 (JSON) unless ``X-CSRF-Token`` is the session's token."""
    if not token_matches(request, request.headers.get(CSRF_HEADER)):
        raise AdminInterruption(
            error_response(
                403,
                "forbidden",
                "the X-CSRF-Token header is missing or wrong; reload the page and try again",
                headers={"Cache-Control": "no-store"},
            )
        )


def _expired(request: Request) -> Response:
    back = request.headers.get("referer", "")
    return render_page(
        request,
        "forbidden.html",
        {"reason": "expired", "back": back if _same_site(request, back) else ""},
        status_code=403,
        nav="",
    )


def _too_large(request: Request, limit: int) -> Response:
    return render_page(
        request,
        "forbidden.html",
        {"reason": "too_large", "limit": limit, "back": ""},
        status_code=413,
        nav="",
    )


def _same_site(request: Request, url: str) -> bool:
    origin = f"{request.url.scheme}://{request.url.netloc}/"
    return url.startswith(origin)
