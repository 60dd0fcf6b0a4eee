"""Templates and notification types: the file and stored templates, the notification types
with their last week's counts, and the editor of a stored template with its preview.

The editor previews in the notification sandbox (:mod:`.template_preview`): the "Preview"
button posts the form and gets the page back with the preview (no script needed), and
``template_preview.js`` asks ``/admin/api/templates/preview`` after each pause in typing and
puts the answer in place. Saving compiles every part first (the library refuses a template
that does not compile) and stores it, overriding a file of the same name from the next
message on; deleting a stored template brings the file back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from mailroom.access import AdminUser
from mailroom.compose.templates import TemplateLibrary
from mailroom.errors import TemplateError
from mailroom.outbox import notification_queries
from mailroom.web.admin import template_listing as listing
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm, check_csrf_header, read_bounded_form
from mailroom.web.admin.previews import PREVIEW_HEADERS
from mailroom.web.admin.rendering import NavEntry, flash, render_page
from mailroom.web.admin.template_preview import (
    Preview,
    PreviewStore,
    part_error,
    render_preview,
    sample_context_json,
)
from mailroom.web.dependencies import DatabaseEngine, ReadEngine, ServiceNotifier, ServiceSettings

__all__ = ["TEMPLATES_ENTRY", "router"]

TEMPLATES_ENTRY = NavEntry("templates", "Templates", "/templates")

router = APIRouter()

# One store per process: the service is one process, and a preview lives minutes.
_PREVIEWS = PreviewStore()
_FIELDS = ("name", "subject", "html", "text", "context")
TemplateName = Annotated[str, Query(max_length=200)]


async def _script_form(request: Request) -> FormData:
    """The form a script posted, if its ``X-CSRF-Token`` header is the session's."""
    check_csrf_header(request)
    return await read_bounded_form(request)


ScriptForm = Annotated[FormData, Depends(_script_form)]


def _list_path(request: Request) -> str:
    # Our own route's path, never one taken from the request: no open redirect.
    return request.url_for("templates_list").path


def _edit_path(request: Request, name: str) -> str:
    return f"{request.url_for('template_edit').path}?name={quote(name, safe='/')}"


@router.get("/templates", response_class=HTMLResponse, name="templates_list")
def templates_list(
    request: Request,
    _admin: CurrentAdmin,
    engine: ReadEngine,
    notifier: ServiceNotifier,
    settings: ServiceSettings,
) -> HTMLResponse:
    library = notifier.templates
    with engine.connect() as connection:
        rows = notification_queries.list_templates(connection)
        stored_names = [row["name"] for row in rows]
        files = listing.file_templates(library.dirs, stored_names)
        file_names = [f.name for f in files]
        types = listing.notification_type_rows(
            connection,
            notifier.registry,
            from_settings=settings.NOTIFICATION_TYPES,
            stored=stored_names,
            files=file_names,
            now=time.time(),
        )
    context = {
        "files": files,
        "stored": listing.stored_templates(rows, file_names),
        "folders": library.dirs,
        "types": types,
    }
    return render_page(request, "templates/list.html", context, nav="templates")


@router.get("/templates/new", response_class=HTMLResponse, name="template_new")
def template_new(
    request: Request,
    admin: CurrentAdmin,
    notifier: ServiceNotifier,
    copy: Annotated[str | None, Query(alias="from", max_length=200)] = None,
) -> HTMLResponse:
    """A blank editor, or one holding a file template's sources to override it."""
    form = dict.fromkeys(_FIELDS, "")
    form["context"] = sample_context_json()
    if copy:
        source = listing.file_template(notifier.templates.dirs, copy)
        if source is None:
            return _missing(request, copy, "No template folder holds a template of that name.")
        form.update(name=source.name, subject=source.subject)
        form.update(html=source.html or "", text=source.text or "")
    preview = _preview(notifier.templates, form) if copy else None
    return _editor(request, admin, notifier.templates, form, mode="new", preview=preview)


@router.get("/templates/edit", response_class=HTMLResponse, name="template_edit")
def template_edit(
    request: Request,
    name: TemplateName,
    admin: CurrentAdmin,
    engine: ReadEngine,
    notifier: ServiceNotifier,
) -> HTMLResponse:
    with engine.connect() as connection:
        row = notification_queries.load_template(connection, name)
    if row is None:
        return _missing(request, name, "No stored template has that name.")
    form = {
        "name": name,
        "subject": row["subject"],
        "html": row["html"] or "",
        "text": row["text"] or "",
        "context": sample_context_json(),
    }
    preview = _preview(notifier.templates, form)
    return _editor(request, admin, notifier.templates, form, mode="edit", preview=preview)


@router.post("/templates/preview", response_class=HTMLResponse)
def template_preview_page(
    request: Request, admin: CurrentAdmin, form: CheckedForm, notifier: ServiceNotifier
) -> HTMLResponse:
    """The editor again, with the preview of what was posted (without a script)."""
    values = _values(form)
    mode = "edit" if form.get("mode") == "edit" else "new"
    preview = _preview(notifier.templates, values)
    return _editor(request, admin, notifier.templates, values, mode=mode, preview=preview)


@router.post("/api/templates/preview")
def template_preview_api(
    request: Request, admin: CurrentAdmin, form: ScriptForm, notifier: ServiceNotifier
) -> JSONResponse:
    """The preview as JSON, for the editor's script. A plain ``def``: the sandbox may run
    for its whole timeout, in a worker thread rather than on the event loop."""
    preview = _preview(notifier.templates, _values(form))
    url = _html_url(request, preview, admin)
    return JSONResponse(
        {
            "subject": preview.subject,
            "text": preview.text,
            "html_url": url,
            "errors": [error.as_json() for error in preview.errors],
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/templates/preview/{token}", name="template_preview_html")
def template_preview_html(token: str, admin: CurrentAdmin) -> Response:
    """The rendered HTML for the preview frame, under the CSP of a message's preview."""
    html = _PREVIEWS.get(admin.id, token[:64])
    if html is None:
        return Response(
            "This preview has expired: change the template or press Preview again.",
            404,
            dict(PREVIEW_HEADERS),
            "text/plain; charset=utf-8",
        )
    return Response(html, headers=dict(PREVIEW_HEADERS), media_type="text/html; charset=utf-8")


@router.post("/templates/save", response_model=None)
def template_save(
    request: Request,
    admin: CurrentAdmin,
    form: CheckedForm,
    engine: DatabaseEngine,
    notifier: ServiceNotifier,
) -> HTMLResponse | RedirectResponse:
    values = _values(form)
    mode = "edit" if form.get("mode") == "edit" else "new"
    library = notifier.templates
    name, subject = values["name"].strip(), values["subject"]
    html, text = values["html"] or None, values["text"] or None
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the template a name."
    if not subject.strip():
        errors["subject"] = "Give the template a subject."
    if html is None and text is None:
        errors["html"] = "Give an HTML body, a text body, or both."
    if mode == "new" and name and not errors:
        with engine.connect() as connection:
            if notification_queries.load_template(connection, name) is not None:
                errors["name"] = "A stored template has this name already: edit that one."
    if not errors:
        try:
            library.save(name, subject=subject, html=html, text=text)
        except TemplateError as exc:
            error = part_error(exc)
            where = f"Line {error.line}: " if error.line is not None else ""
            errors[error.part] = where + error.message
    if errors:
        preview = _preview(library, values)
        return _editor(
            request,
            admin,
            library,
            values,
            mode=mode,
            preview=preview,
            errors=errors,
            status_code=422,
        )
    response = RedirectResponse(_edit_path(request, name), status_code=303)
    flash(response, f"Saved template {name}: the next message that uses it gets this version.")
    return response


@router.post("/templates/delete")
def template_delete(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> RedirectResponse:
    name = str(form.get("name") or "")
    with engine.begin() as connection:
        deleted = notification_queries.delete_template(connection, name)
    response = RedirectResponse(_list_path(request), status_code=303)
    if deleted:
        flash(response, f"Deleted the stored template {name}.", "success")
    else:
        flash(response, f"No stored template is named {name!r}.", "error")
    return response


def _values(form: FormData) -> dict[str, str]:
    values = {field: str(form.get(field) or "") for field in _FIELDS}
    # Browsers send a textarea's line breaks as CRLF; the template is stored as typed.
    return {field: value.replace("\r\n", "\n") for field, value in values.items()}


def _preview(library: TemplateLibrary, values: Mapping[str, str]) -> Preview:
    return render_preview(
        library,
        values["name"].strip(),
        subject=values["subject"],
        html=values["html"] or None,
        text=values["text"] or None,
        context_source=values["context"],
    )


def _html_url(request: Request, preview: Preview, admin: AdminUser) -> str | None:
    if preview.html is None:
        return None
    token = _PREVIEWS.put(admin.id, preview.html)
    return request.url_for("template_preview_html", token=token).path


def _editor(
    request: Request,
    admin: AdminUser,
    library: TemplateLibrary,
    form: Mapping[str, str],
    *,
    mode: str,
    preview: Preview | None,
    errors: Mapping[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    name = form["name"].strip()
    context = {
        "form": form,
        "mode": mode,
        "errors": errors or {},
        "preview": preview,
        "html_url": None if preview is None else _html_url(request, preview, admin),
        "has_file": bool(name) and listing.file_template(library.dirs, name) is not None,
    }
    return render_page(
        request, "templates/edit.html", context, status_code=status_code, nav="templates"
    )


def _missing(request: Request, name: str, reason: str) -> HTMLResponse:
    return render_page(
        request,
        "templates/missing.html",
        {"name": name, "reason": reason},
        status_code=404,
        nav="templates",
    )
