"""Captured mail: what the ``capture`` transport kept instead of relaying, as an inbox.

Newest first with a search and keyset pages (``?before=`` the last id shown); one message
with HTML / Text / Headers / Raw tabs (plain links with ``?tab=``: no script needed), its
``.eml``, delete one or all. While the first page is open, ``static/admin/captured.js``
asks ``/admin/api/captured/latest?after=<newest id>`` every two seconds and puts what
arrived on top.

A message's HTML is never put in the admin page: the HTML tab is a sandboxed iframe whose
document comes from ``/captured/{id}/html`` under a CSP that forbids scripts, remote loads
and being framed by anyone but us.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from mailroom.outbox.capture_queries import (
    CapturedMessage,
    CapturedSummary,
    delete_all_captured,
    delete_captured,
    get_captured,
    list_captured,
)
from mailroom.outbox.presentation import message_headers, message_parts
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.previews import PREVIEW_HEADERS
from mailroom.web.admin.rendering import filesize, flash, format_datetime, render_page
from mailroom.web.dependencies import DatabaseEngine, ReadEngine

__all__ = ["router"]

router = APIRouter()

PAGE_SIZE = 50
"""Messages a page of the list shows."""
LATEST_LIMIT = 50
"""The most new messages one poll returns; when more arrived, the page says to reload."""
RAW_SHOWN = 512 * 1024
"""The most characters of a message's source the Raw tab shows (the .eml has it all)."""
TABS = (("html", "HTML"), ("text", "Text"), ("headers", "Headers"), ("raw", "Raw"))


CapturedId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Search = Annotated[str | None, Query(max_length=200)]


def _search(q: str | None) -> str | None:
    return (q or "").strip() or None


def _list_path(request: Request) -> str:
    # A path of our own route, never one taken from the request: no open redirect.
    return request.url_for("captured_list").path


@router.get("/captured", response_class=HTMLResponse, name="captured_list")
def captured_list(
    request: Request,
    _admin: CurrentAdmin,
    engine: ReadEngine,
    q: Search = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    search = _search(q)
    with engine.connect() as connection:
        rows = list_captured(connection, before=before, limit=PAGE_SIZE + 1, search=search)
    page = rows[:PAGE_SIZE]
    context = {
        "items": page,
        "search": search or "",
        "before": before,
        "older": page[-1].id if len(rows) > PAGE_SIZE else None,
        # Only the first page follows new mail: an older page stays as it was read.
        "live": before is None,
        "newest_id": page[0].id if page else 0,
    }
    return render_page(request, "captured/list.html", context, nav="captured")


@router.get("/api/captured/latest")
def captured_latest(
    _admin: CurrentAdmin,
    engine: ReadEngine,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    q: Search = None,
) -> dict[str, Any]:
    """What was captured after id ``after`` (matching the list's search), newest first.
    ``more``: more arrived than one answer holds, so the page should be reloaded."""
    with engine.connect() as connection:
        rows = list_captured(connection, after=after, limit=LATEST_LIMIT + 1, search=_search(q))
    return {
        "items": [_latest_item(row) for row in rows[:LATEST_LIMIT]],
        "more": len(rows) > LATEST_LIMIT,
    }


def _latest_item(row: CapturedSummary) -> dict[str, Any]:
    # Shown as the server-rendered rows show them, so a prepended row looks like the others.
    return {
        "id": row.id,
        "subject": row.subject,
        "mail_from": row.mail_from,
        "recipients": list(row.recipients),
        "captured_at": format_datetime(row.captured_at),
        "size": filesize(row.size),
    }


def _found(engine: ReadEngine, captured_id: int) -> CapturedMessage | None:
    with engine.connect() as connection:
        return get_captured(connection, captured_id)


def _missing(request: Request, captured_id: int) -> HTMLResponse:
    return render_page(
        request,
        "captured/missing.html",
        {"captured_id": captured_id},
        status_code=404,
        nav="captured",
    )


@router.get("/captured/{captured_id}", response_class=HTMLResponse, name="captured_detail")
def captured_detail(
    request: Request,
    captured_id: CapturedId,
    _admin: CurrentAdmin,
    engine: ReadEngine,
    tab: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    found = _found(engine, captured_id)
    if found is None:
        return _missing(request, captured_id)
    parts = message_parts(found.data)
    shown = tab if tab in dict(TABS) else ("html" if parts.html is not None else "text")
    raw = found.data.decode("utf-8", errors="replace")
    context = {
        "message": found,
        "parts": parts,
        "tabs": TABS,
        "tab": shown,
        "tab_label": dict(TABS)[shown],
        "headers": message_headers(found.data) if shown == "headers" else [],
        "raw": raw[:RAW_SHOWN] if shown == "raw" else "",
        "raw_clipped": len(raw) > RAW_SHOWN,
    }
    return render_page(request, "captured/detail.html", context, nav="captured")


@router.get("/captured/{captured_id}/html")
def captured_html(captured_id: CapturedId, _admin: CurrentAdmin, engine: ReadEngine) -> Response:
    """The HTML body alone, for the sandboxed iframe of the HTML tab."""
    found = _found(engine, captured_id)
    html = None if found is None else message_parts(found.data).html
    if html is None:
        return Response(
            "<p>No HTML part.</p>",
            status_code=404,
            media_type="text/html; charset=utf-8",
            headers=dict(PREVIEW_HEADERS),
        )
    return Response(html, media_type="text/html; charset=utf-8", headers=dict(PREVIEW_HEADERS))


@router.get("/captured/{captured_id}/download")
def captured_download(
    request: Request, captured_id: CapturedId, _admin: CurrentAdmin, engine: ReadEngine
) -> Response:
    """The exact bytes a relay would have been given, as a file to open in a mail client."""
    found = _found(engine, captured_id)
    if found is None:
        return _missing(request, captured_id)
    return Response(
        found.data,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": f'attachment; filename="captured-{captured_id}.eml"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.post("/captured/delete-all")
def captured_delete_all(
    request: Request, _admin: CurrentAdmin, _form: CheckedForm, engine: DatabaseEngine
) -> RedirectResponse:
    with engine.begin() as connection:
        deleted = delete_all_captured(connection)
    response = RedirectResponse(_list_path(request), status_code=303)
    flash(response, f"Deleted every captured message ({deleted}).", "success")
    return response


@router.post("/captured/{captured_id}/delete")
def captured_delete(
    request: Request,
    captured_id: CapturedId,
    _admin: CurrentAdmin,
    _form: CheckedForm,
    engine: DatabaseEngine,
) -> RedirectResponse:
    with engine.begin() as connection:
        deleted = delete_captured(connection, captured_id)
    response = RedirectResponse(_list_path(request), status_code=303)
    if deleted:
        flash(response, f"Deleted captured message {captured_id}.", "success")
    else:
        flash(response, f"Captured message {captured_id} was already gone.", "error")
    return response
