"""API keys: the keys applications call the HTTP API with, as ``mailroom apikeys`` manages
them: list (never the key itself, which is not stored), create, revoke.

A new key is shown once, on the page that answers the create form, and nowhere else: not in
a redirect's URL, not in the one-shot notice cookie, not in any later page. That answer is
``Cache-Control: no-store`` like every admin page, so the browser does not keep it either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Engine

from mailroom.access import ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from mailroom.outbox.vocabulary import ApiKeyScope
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import NavEntry, flash, render_page
from mailroom.web.dependencies import DatabaseEngine, ReadEngine

__all__ = ["APIKEYS_ENTRY", "router"]

APIKEYS_ENTRY = NavEntry("apikeys", "API keys", "/apikeys")

router = APIRouter()

SCOPES = {
    ApiKeyScope.SEND.value: "Send mail and notifications, and read what this key sent",
    ApiKeyScope.ADMIN.value: "Everything the API offers: all messages, captured mail, "
    "suppressions, preferences",
}


def _list_path(request: Request) -> str:
    # Our own route's path, never one taken from the request: no open redirect.
    return request.url_for("apikeys_list").path


@router.get("/apikeys", response_class=HTMLResponse, name="apikeys_list")
def apikeys_list(request: Request, _admin: CurrentAdmin, engine: ReadEngine) -> HTMLResponse:
    return _list_page(request, engine)


def _list_page(
    request: Request,
    engine: Engine,
    *,
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    with engine.connect() as connection:
        keys = list_api_keys(connection)
    context = {
        # Live keys first, newest first; the revoked ones after them, for the record.
        "keys": sorted(keys, key=lambda k: (k.revoked, -k.created_at)),
        "scopes": SCOPES,
        "form": {"name": "", "scope": ApiKeyScope.SEND.value, **(form or {})},
        "errors": errors or {},
    }
    status = 422 if errors else 200
    return render_page(request, "apikeys/list.html", context, status_code=status, nav="apikeys")


@router.post("/apikeys/create", response_class=HTMLResponse)
def apikeys_create(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> HTMLResponse:
    values = {name: str(form.get(name) or "").strip() for name in ("name", "scope")}
    errors: dict[str, str] = {}
    scope = None
    try:
        scope = ApiKeyScope(values["scope"])
    except ValueError:
        errors["scope"] = "Choose send or admin."
    if scope is not None:
        try:
            with engine.begin() as connection:
                key, plaintext = create_api_key(
                    connection, name=values["name"], scope=scope, now=time.time()
                )
        except ApiKeyError as exc:
            errors[exc.field] = str(exc).removeprefix(f"{exc.field}: ")
    if errors or scope is None:
        return _list_page(request, engine, form=values, errors=errors)
    # The one answer that holds the key: rendered here, not after a redirect, so it travels
    # in this response's body alone.
    return render_page(
        request,
        "apikeys/created.html",
        {"key": key, "plaintext": plaintext, "scope_text": SCOPES[key.scope.value]},
        nav="apikeys",
    )


@router.post("/apikeys/revoke")
def apikeys_revoke(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> RedirectResponse:
    ident = str(form.get("id") or "").strip()
    response = RedirectResponse(_list_path(request), status_code=303)
    if not (ident.isascii() and ident.isdigit()):
        flash(response, "Nothing revoked: no key was named.", "error")
        return response
    now = time.time()
    with engine.begin() as connection:
        key = revoke_api_key(connection, ident, now)
    if key is None:
        flash(response, f"Nothing revoked: there is no API key {ident}.", "error")
    elif key.revoked_at != now:  # revoked before: revoking it again changed nothing
        flash(response, f"The key “{key.name}” ({key.prefix}) was already revoked.", "info")
    else:
        flash(
            response,
            f"Revoked the key “{key.name}” ({key.prefix}): it authenticates nothing any more.",
            "success",
        )
    return response
