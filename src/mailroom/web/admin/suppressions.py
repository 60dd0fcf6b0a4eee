"""Suppressions: who must not be mailed. List and search (keyset pages, oldest first, as
``mailroom suppressions list``), add, remove, and one address's page with its consent-log
history. Under the list, the newest opt-outs of one notification type (an unsubscribe link
turns the type off in the recipient's preferences, which is no entry of the list); the
address page shows that recipient's choices per type. Import and export are in
:mod:`mailroom.web.admin.suppression_files`.

Every change goes through :mod:`mailroom.consent.suppression` with source ``admin``, so the
consent log says it was made here, as it says ``cli`` or ``api`` for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Engine

from mailroom.consent import queries as q
from mailroom.consent.listing import (
    entry_sources,
    list_suppressions,
    recent_opt_outs,
    recipient_choices,
)
from mailroom.consent.scopes import SCOPE_ALL, check_scope, normalize_address
from mailroom.consent.suppression import suppress, unsuppress
from mailroom.consent.suppression_csv import check_note, parse_expiry
from mailroom.errors import MessageError
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.web.admin import suppression_files
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import flash, render_page
from mailroom.web.admin.suppression_sources import ADMIN_SOURCE, source_label
from mailroom.web.dependencies import DatabaseEngine, ReadEngine

__all__ = ["router"]

router = APIRouter()
router.include_router(suppression_files.router)

PAGE_SIZE = 100
OPT_OUTS_SHOWN = 50
_FIELDS = ("address", "scope", "reason", "expires", "note")
T = TypeVar("T")


def _list_path(request: Request) -> str:
    # Paths of our own routes, never taken from the request: no open redirect.
    return request.url_for("suppressions_list").path


def _detail_path(request: Request, address: str) -> str:
    # Quoted: an address may hold "?", "#" or "%" (a quoted local part), which would
    # otherwise end the path early.
    return f"{_list_path(request)}/{quote(address, safe='@+')}"


@router.get("/suppressions", response_class=HTMLResponse, name="suppressions_list")
def suppressions_list(
    request: Request,
    _admin: CurrentAdmin,
    engine: ReadEngine,
    q: Annotated[str | None, Query(max_length=320)] = None,
    scope: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> HTMLResponse:
    return _list_page(request, engine, search=q, scope=scope, after=after)


def _list_page(
    request: Request,
    engine: Engine,
    *,
    search: str | None,
    scope: str | None,
    after: int | None,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    search = (search or "").strip() or None
    scope = (scope or "").strip() or None
    filter_error = None
    page: list[Any] = []
    sources: dict[int, str | None] = {}
    opt_outs: list[Any] = []
    more = False
    try:
        with engine.connect() as connection:
            rows = list_suppressions(
                connection, after=after, limit=PAGE_SIZE + 1, search=search, scope=scope
            )
            page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
            sources = entry_sources(connection, page)
            if after is None:  # beside the first page only: it is the newest, not a page
                opt_outs = recent_opt_outs(
                    connection, limit=OPT_OUTS_SHOWN, search=search, scope=scope
                )
    except MessageError as exc:
        filter_error = str(exc)
    context = {
        "entries": [(entry, source_label(sources.get(entry.id), entry.reason)) for entry in page],
        "opt_outs": [(choice, source_label(choice.source, None)) for choice in opt_outs],
        "opt_outs_shown": OPT_OUTS_SHOWN,
        "now": time.time(),
        "search": search or "",
        "scope": scope or "",
        "after": after,
        "next_after": page[-1].id if more else None,
        "filter_error": filter_error,
        "reasons": [reason.value for reason in SuppressionReason],
        "form": {"scope": SCOPE_ALL, "reason": SuppressionReason.MANUAL.value, **(form or {})},
        "errors": errors or {},
    }
    status = 422 if errors or filter_error else 200
    return render_page(
        request, "suppressions/list.html", context, status_code=status, nav="suppressions"
    )


@router.post("/suppressions/add", response_model=None)
def suppressions_add(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> HTMLResponse | RedirectResponse:
    values = {name: str(form.get(name) or "").strip() for name in _FIELDS}
    now = time.time()
    errors: dict[str, str] = {}
    address = _field(errors, "address", lambda: _address(values["address"]))
    scope = _field(errors, "scope", lambda: check_scope(values["scope"] or SCOPE_ALL))
    reason = _field(errors, "reason", lambda: _reason(values["reason"]))
    expires_at = _field(
        errors,
        "expires",
        lambda: parse_expiry(values["expires"], now, field="expires", future_only=True),
    )
    note = _field(errors, "note", lambda: check_note(values["note"] or None, field="note"))
    if errors or address is None or scope is None or reason is None:
        return _list_page(
            request, engine, search=None, scope=None, after=None, form=values, errors=errors
        )
    suppress(
        engine,
        address,
        reason,
        scope=scope,
        expires_at=expires_at,
        note=note,
        source=ADMIN_SOURCE,
        now=now,
    )
    response = RedirectResponse(_list_path(request), status_code=303)
    flash(response, f"Suppressed {address} for {scope} ({reason.value}).", "success")
    return response


def _field(errors: dict[str, str], name: str, check: Callable[[], T]) -> T | None:
    """``check()``'s value; when it refuses, the reason kept under the form field ``name``."""
    try:
        return check()
    except MessageError as exc:
        errors[name] = str(exc).removeprefix(f"{exc.field}: ")
        return None


def _address(text: str) -> str:
    if not text:
        raise MessageError("address", "give the address to suppress")
    return normalize_address(text)


def _reason(text: str) -> SuppressionReason:
    try:
        return SuppressionReason(text or SuppressionReason.MANUAL.value)
    except ValueError:
        known = ", ".join(reason.value for reason in SuppressionReason)
        raise MessageError("reason", f"{text!r} is not one of {known}") from None


@router.post("/suppressions/remove")
def suppressions_remove(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> RedirectResponse:
    back_to_detail = form.get("back") == "detail"
    try:
        address = normalize_address(str(form.get("address") or ""))
        scope = check_scope(str(form.get("scope") or SCOPE_ALL))
    except MessageError as exc:
        response = RedirectResponse(_list_path(request), status_code=303)
        flash(response, f"Nothing removed: {exc}", "error")
        return response
    removed = unsuppress(engine, address, scope=scope, source=ADMIN_SOURCE, now=time.time())
    target = _detail_path(request, address) if back_to_detail else _list_path(request)
    response = RedirectResponse(target, status_code=303)
    if removed:
        flash(response, f"Removed {address} from the suppression list for {scope}.", "success")
    else:
        flash(response, f"{address} was not on the suppression list for {scope}.", "error")
    return response


@router.get("/suppressions/{address:path}", response_class=HTMLResponse, name="suppression_detail")
def suppression_detail(
    request: Request, address: str, _admin: CurrentAdmin, engine: ReadEngine
) -> HTMLResponse:
    try:
        normalized = normalize_address(address)
    except MessageError:
        normalized = None
    entries: list[tuple[q.Suppression, str]] = []
    history: list[dict[str, Any]] = []
    choices: list[tuple[Any, str]] = []
    if normalized is not None:
        with engine.connect() as connection:
            choices = [
                (choice, source_label(choice.source, None))
                for choice in recipient_choices(connection, normalized)
            ]
            found = q.list_suppressions(connection, normalized)
            sources = q.suppression_sources(connection, [normalized])
            history = [
                {**row, "source_label": source_label(row["source"], None)}
                for row in q.consent_history(connection, normalized)
            ]
        entries = [
            (entry, source_label(sources.get((entry.address, entry.scope)), entry.reason))
            for entry in found
        ]
    context = {
        "address": normalized or address,
        "valid": normalized is not None,
        "entries": entries,
        "history": history,
        "choices": choices,
        "now": time.time(),
    }
    status = 200 if entries or history or choices else 404
    return render_page(
        request, "suppressions/detail.html", context, status_code=status, nav="suppressions"
    )
