"""The status page, the admin's landing page at ``/admin/``: where mail goes, the queue, the
send rate, the last day hour by hour, the newest errors, paused streams, and a test email.

Every figure is read from the database when the page is asked for (through the read engine:
on SQLite it never waits for the worker's write lock), in a worker thread so the event loop
keeps serving. The test email runs :func:`mailroom.delivery.testmail.run_test_email`, the
core of ``mailroom send-test-email``, in a thread as well; its report is shown on the page it
answers with, never kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from mailroom.config import Settings
from mailroom.delivery.testmail import TestEmailReport, run_test_email
from mailroom.errors import MessageError
from mailroom.message.address import Address
from mailroom.outbox.status import StatusOverview, status_overview
from mailroom.outbox.vocabulary import Status
from mailroom.transports.summary import transport_summary
from mailroom.web.admin.auth import CurrentAdmin
from mailroom.web.admin.csrf import CheckedForm
from mailroom.web.admin.rendering import NavEntry, render_page
from mailroom.web.admin.sessions import admin_path
from mailroom.web.admin.status_chart import hourly_chart
from mailroom.web.dependencies import ReadEngine, ServiceSettings
from mailroom.web.paths import API_PREFIX

__all__ = ["STATUS_ENTRY", "router"]

STATUS_ENTRY = NavEntry("status", "Status", "/")

router = APIRouter()

_MAX_ADDRESS_CHARS = 320  # RFC 5321: 64 + "@" + 255

STREAM_COLUMNS = (
    Status.QUEUED,
    Status.SCHEDULED,
    Status.SENDING,
    Status.DEFERRED,
    Status.SENT,
    Status.FAILED,
    Status.CANCELLED,
    Status.SUPPRESSED,
)
"""The status columns of the per-stream table, in the order a message moves through them."""


async def bare_prefix(request: Request) -> RedirectResponse:
    """``/admin`` without its slash: to ``/admin/``, the one address of the page (a path, never
    built from the Host header). Registered by :func:`mailroom.web.admin.admin_router`."""
    return RedirectResponse(f"{admin_path(request)}/", status_code=308)


@router.get("/", response_class=HTMLResponse)
async def status_page(
    request: Request, user: CurrentAdmin, engine: ReadEngine, settings: ServiceSettings
) -> HTMLResponse:
    overview = await run_in_threadpool(status_overview, engine)
    return render_page(request, "status.html", _context(request, overview, settings), nav="status")


@router.post("/test-email", response_class=HTMLResponse)
async def send_test_email(
    request: Request,
    user: CurrentAdmin,
    form: CheckedForm,
    engine: ReadEngine,
    settings: ServiceSettings,
) -> HTMLResponse:
    """Send the two test messages to the address given and answer with the page and the
    report. The report is answered, not kept: it may hold a relay's reply meant for this
    admin alone."""
    address = str(form.get("address") or "").strip()
    error = _address_error(address)
    report: TestEmailReport | None = None
    if error is None:
        # Blocking (its own event loop, a relay's timeouts): in a thread of its own.
        report = await asyncio.to_thread(run_test_email, settings, (address,))
    overview = await run_in_threadpool(status_overview, engine)
    context = {
        **_context(request, overview, settings),
        "test_address": address,
        "test_error": error,
        "test_report": report,
    }
    return render_page(
        request, "status.html", context, nav="status", status_code=422 if error else 200
    )


def _address_error(address: str) -> str | None:
    if not address:
        return "Enter the address to send the two test messages to."
    if len(address) > _MAX_ADDRESS_CHARS:
        return f"An address has at most {_MAX_ADDRESS_CHARS} characters."
    try:
        Address.parse(address, "address")
    except MessageError as exc:  # not an address, several, a line break
        return f"Not one email address: {str(exc).partition(': ')[2]}"
    return None


def _context(request: Request, overview: StatusOverview, settings: Settings) -> dict[str, Any]:
    counts = overview.counts
    waiting = sum(counts.get(s.value, 0) for s in (Status.QUEUED, Status.SCHEDULED))
    return {
        "overview": overview,
        "transport": transport_summary(settings),
        "chart": hourly_chart(overview.hours),
        "statuses": [(status.value, counts.get(status.value, 0)) for status in STREAM_COLUMNS],
        "stream_columns": [status.value for status in STREAM_COLUMNS],
        "total_messages": sum(counts.values()),
        "waiting": waiting,
        "api_send_path": f"{str(request.scope.get('root_path', '')).rstrip('/')}"
        f"{API_PREFIX}/messages",
        "test_address": "",
        "test_error": None,
        "test_report": None,
    }
