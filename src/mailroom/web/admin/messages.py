"""The admin's messages: search the outbox, read one message, retry or cancel it.

Thin, as every admin page: the search is :mod:`mailroom.outbox.message_search`, a message's
fields and send log come from :mod:`mailroom.outbox.operations` (what ``mailroom queue show``
reads), its headers and parts from :mod:`mailroom.outbox.presentation` (what the captured-mail
API shows), retry and cancel are the CLI's own operations. A message's HTML is never put in
the admin page: it is served alone, by ``/messages/{id}/html``, under a CSP that allows no
script, no request and no framing outside the admin, into an ``<iframe sandbox="">``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailroom.errors import InvalidCursorError
from mailroom.outbox import operations
from mailroom.outbox.event_queries import events_of
from mailroom.outbox.message_search import MessageSearch, search_messages
from mailroom.outbox.presentation import message_headers, message_parts
from mailroom.outbox.vocabulary import Status
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.previews import PREVIEW_HEADERS
from mailroom.web.admin.rendering import NavEntry, flash, render_page
from mailroom.web.admin.sessions import admin_path
from mailroom.web.dependencies import DatabaseEngine, ReadEngine

__all__ = ["MESSAGES_ENTRY", "router"]

MESSAGES_ENTRY = NavEntry("messages", "Messages", "/messages")


router = APIRouter()

MessagePk = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _day(value: str | None, field: str, errors: dict[str, str]) -> float | None:
    """A ``YYYY-MM-DD`` form value as the epoch of that day's start (UTC)."""
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors[field] = "Write a date as YYYY-MM-DD."
        return None
    return day.timestamp()


def _search_of(query: dict[str, str], errors: dict[str, str]) -> MessageSearch:
    status = None
    if query.get("status"):
        try:
            status = Status(query["status"])
        except ValueError:
            errors["status"] = "Choose a status from the list."
    day_from = _day(query.get("from"), "from", errors)
    day_to = _day(query.get("to"), "to", errors)
    return MessageSearch(
        recipient=query.get("recipient") or None,
        subject=query.get("subject") or None,
        status=status,
        stream=query.get("stream") or None,
        notification_type=query.get("type") or None,
        created_from=day_from,
        # "to" is the last day shown: everything before the next day's start.
        created_before=None if day_to is None else day_to + 86400,
    )


_FILTERS = ("recipient", "subject", "status", "stream", "type", "from", "to")


@router.get("/messages", response_class=HTMLResponse)
def list_messages(
    request: Request,
    _user: CurrentAdmin,
    engine: ReadEngine,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    query = {name: request.query_params.get(name, "").strip()[:320] for name in _FILTERS}
    errors: dict[str, str] = {}
    search = _search_of(query, errors)
    page = None
    status_code = 200
    if not errors:
        try:
            with engine.connect() as connection:
                page = search_messages(connection, search, cursor=cursor or None)
        except InvalidCursorError:
            errors["cursor"] = "That page link is not valid any more; start from the first page."
            status_code = 400
    else:
        status_code = 400
    filtered = {name: value for name, value in query.items() if value}
    return render_page(
        request,
        "messages/list.html",
        {
            "query": query,
            "filtered": filtered,
            "errors": errors,
            "page": page,
            "statuses": [status.value for status in Status],
            "paging": cursor is not None,
        },
        status_code=status_code,
        nav="messages",
    )


def _not_found(request: Request, message_pk: int) -> HTMLResponse:
    return render_page(
        request,
        "messages/missing.html",
        {"message_pk": message_pk},
        status_code=404,
        nav="messages",
    )


@router.get("/messages/{message_pk}", response_class=HTMLResponse)
def show_message(
    request: Request, message_pk: MessagePk, _user: CurrentAdmin, engine: ReadEngine
) -> HTMLResponse:
    with engine.connect() as connection:
        detail = operations.message_detail(connection, message_pk)
        if detail is None:
            return _not_found(request, message_pk)
        tries = operations.attempts_for(connection, message_pk)
        happened = events_of(connection, message_pk)
    parts = message_parts(detail.data)
    context: dict[str, Any] = {
        "message": detail,
        "headers": message_headers(detail.data),
        "parts": parts,
        "source": detail.data.decode("utf-8", errors="replace"),
        "attempts": tries,
        "events": happened,
        "notification_type": (detail.extra or {}).get("notification_type"),
        "can_retry": detail.status in operations.RETRYABLE,
        "can_cancel": detail.status in operations.CANCELLABLE,
    }
    return render_page(request, "messages/detail.html", context, nav="messages")


@router.get("/messages/{message_pk}/html")
def message_html(message_pk: MessagePk, _user: CurrentAdmin, engine: ReadEngine) -> Response:
    with engine.connect() as connection:
        detail = operations.message_detail(connection, message_pk)
    if detail is None:
        return Response("No such message.", status_code=404, media_type="text/plain")
    html = message_parts(detail.data).html
    if html is None:
        return Response("This message has no HTML part.", 404, dict(PREVIEW_HEADERS), "text/plain")
    return Response(html, headers=dict(PREVIEW_HEADERS), media_type="text/html; charset=utf-8")


def _back(request: Request, message_pk: int, notice: str, kind: str) -> RedirectResponse:
    # Built from the admin's own path and the id, never from the request: no open redirect.
    response = RedirectResponse(f"{admin_path(request)}/messages/{message_pk}", status_code=303)
    flash(response, notice, kind)
    return response


@router.post("/messages/{message_pk}/retry")
def retry_message(
    request: Request,
    message_pk: MessagePk,
    _user: CurrentAdmin,
    _form: CheckedForm,
    engine: DatabaseEngine,
) -> RedirectResponse:
    with engine.begin() as connection:
        changed = operations.retry(connection, now=time.time(), ids=[message_pk])
    if changed:
        return _back(request, message_pk, "Put back in the queue; it is sent shortly.", "success")
    return _back(
        request,
        message_pk,
        "Not retried: only failed, deferred or cancelled messages can be.",
        "error",
    )


@router.post("/messages/{message_pk}/cancel")
def cancel_message(
    request: Request,
    message_pk: MessagePk,
    _user: CurrentAdmin,
    _form: CheckedForm,
    engine: DatabaseEngine,
) -> RedirectResponse:
    with engine.begin() as connection:
        changed = operations.cancel(connection, now=time.time(), ids=[message_pk])
    if changed:
        return _back(request, message_pk, "Cancelled: it will not be sent.", "success")
    return _back(
        request,
        message_pk,
        "Not cancelled: it is being sent, or was already sent or stopped.",
        "error",
    )
