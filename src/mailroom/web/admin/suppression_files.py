"""The suppression list as a CSV file: upload one to import, download the list to export.

Both speak the format of ``mailroom suppressions import|export``
(:mod:`mailroom.consent.suppression_csv`) and write through the same import
(:func:`mailroom.consent.suppression_import.import_rows`), so a file moves between the shell
and these pages unchanged. The rows an import rejects are listed on the result page with their
line and why (the first :data:`REJECTED_SHOWN`, and how many more: a file of junk must not
make a page hundreds of times its size); the others are imported.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import Engine
from starlette.datastructures import UploadFile

from mailroom.consent.listing import all_suppressions
from mailroom.consent.scopes import check_scope
from mailroom.consent.suppression_csv import (
    COLUMNS,
    CsvHeaderError,
    Rejected,
    export_header,
    export_row,
    export_writer,
    read_rows,
)
from mailroom.consent.suppression_import import import_rows
from mailroom.errors import MessageError
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import render_page
from mailroom.web.admin.suppression_sources import ADMIN_SOURCE
from mailroom.web.dependencies import DatabaseEngine, ReadEngine

__all__ = ["IMPORT_MAX_BYTES", "REJECTED_SHOWN", "router"]

router = APIRouter()

IMPORT_MAX_BYTES = 5 * 1024 * 1024
"""The largest file an upload takes (about 100,000 rows); the shell takes any size."""
REJECTED_SHOWN = 500
"""Rejected rows an import's result page lists; the rest are counted."""
_EXPORT_CHUNK = 64 * 1024


class _Rejections:
    """The rows an import rejects: the first :data:`REJECTED_SHOWN` kept, all counted."""

    def __init__(self) -> None:
        self.shown: list[Rejected] = []
        self.count = 0

    def __call__(self, row: Rejected) -> None:
        self.count += 1
        if len(self.shown) < REJECTED_SHOWN:
            self.shown.append(row)


def _import_page(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    imported: int | None = None,
    rejected: _Rejections | None = None,
    filename: str = "",
) -> HTMLResponse:
    context = {
        "columns": COLUMNS,
        "max_bytes": IMPORT_MAX_BYTES,
        "error": error,
        "imported": imported,
        "rejected": [] if rejected is None else rejected.shown,
        "rejected_count": 0 if rejected is None else rejected.count,
        "filename": filename,
    }
    return render_page(
        request,
        "suppressions/import.html",
        context,
        status_code=status_code,
        nav="suppressions",
    )


@router.get("/suppressions/import", response_class=HTMLResponse, name="suppressions_import")
def import_form(request: Request, _admin: CurrentAdmin) -> HTMLResponse:
    return _import_page(request)


@router.post("/suppressions/import", response_class=HTMLResponse)
def import_upload(
    request: Request, _admin: CurrentAdmin, form: CheckedForm, engine: DatabaseEngine
) -> HTMLResponse:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _import_page(request, status_code=422, error="Choose a CSV file to import.")
    filename = upload.filename
    data = upload.file.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        return _import_page(
            request,
            status_code=413,
            filename=filename,
            error=f"The file is over {IMPORT_MAX_BYTES // (1024 * 1024)} MiB: split it, or "
            "import it from the shell with mailroom suppressions import.",
        )
    # As the shell reads a file: UTF-8 (a spreadsheet's BOM skipped), bytes that are not
    # UTF-8 kept so their row is reported rather than the whole file refused.
    text = io.TextIOWrapper(
        io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    now = time.time()
    rejected = _Rejections()
    try:
        imported = import_rows(
            engine, read_rows(text, now), now=now, source=ADMIN_SOURCE, report=rejected
        )
    except CsvHeaderError as exc:
        return _import_page(request, status_code=422, error=str(exc), filename=filename)
    return _import_page(
        request,
        status_code=422 if rejected.count else 200,
        imported=imported,
        rejected=rejected,
        filename=filename,
    )


@router.get("/suppressions/export.csv", name="suppressions_export", response_model=None)
def export_csv(
    _admin: CurrentAdmin,
    engine: ReadEngine,
    q: Annotated[str | None, Query(max_length=320)] = None,
    scope: Annotated[str | None, Query(max_length=200)] = None,
) -> StreamingResponse | PlainTextResponse:
    """The list (or the entries the list page's search shows) in the columns import reads,
    written a page of entries at a time."""
    search = (q or "").strip() or None
    try:
        checked_scope = check_scope(scope.strip()) if scope and scope.strip() else None
    except MessageError as exc:
        return PlainTextResponse(f"Nothing exported: {exc}", status_code=422)
    day = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        _export_chunks(engine, search, checked_scope),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="suppressions-{day}.csv"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _export_chunks(engine: Engine, search: str | None, scope: str | None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = export_writer(buffer)
    writer.writerow(export_header())
    with engine.connect() as connection:
        for entry in all_suppressions(connection, search=search, scope=scope):
            writer.writerow(export_row(entry))
            if buffer.tell() >= _EXPORT_CHUNK:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()
