"""``/api/v1/captured``: the mail the ``capture`` transport kept instead of relaying (admin
keys only). Newest first, paged by id (``?before=`` the ``next`` of the previous page); one
message with its parsed headers, bodies and files, or its exact bytes as a ``.eml``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from mailroom.outbox.capture_queries import (
    CapturedSummary,
    delete_all_captured,
    delete_captured,
    get_captured,
    list_captured,
)
from mailroom.outbox.presentation import message_headers, message_parts
from mailroom.web.api.message_models import epoch_time
from mailroom.web.api.messages import ERROR_RESPONSES
from mailroom.web.auth import AdminKey
from mailroom.web.dependencies import DatabaseEngine, ReadEngine
from mailroom.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["captured mail"])

CapturedId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The captured message's id.")]


class CapturedOut(BaseModel):
    """One captured message, as a listing shows it."""

    id: int
    message_pk: int | None = Field(description="Its outbox message (null once purged).")
    message_id: str = Field(description="Its Message-ID header.")
    mail_from: str = Field(description="The envelope sender.")
    recipients: list[str] = Field(description="The envelope recipients.")
    subject: str
    captured_at: str = Field(description="When it was captured (ISO 8601, UTC).")
    size: int = Field(description="Its size in bytes.")


class CapturedPage(BaseModel):
    """Newest first. ``next``: pass it as ``?before=`` for the next page; null at the end."""

    items: list[CapturedOut]
    next: int | None


class AttachedFileOut(BaseModel):
    filename: str | None
    content_type: str
    size: int
    content_id: str | None
    inline: bool


class CapturedDetail(CapturedOut):
    """One captured message, parsed."""

    headers: list[tuple[str, str]] = Field(description="Every header field, in order, decoded.")
    text: str | None = Field(description="The plain text body.")
    html: str | None = Field(description="The HTML body.")
    attachments: list[AttachedFileOut]


class Deleted(BaseModel):
    deleted: int = Field(description="How many captured messages were deleted.")


def _out(summary: CapturedSummary) -> CapturedOut:
    return CapturedOut(
        id=summary.id,
        message_pk=summary.message_pk,
        message_id=summary.message_id,
        mail_from=summary.mail_from,
        recipients=list(summary.recipients),
        subject=summary.subject,
        captured_at=epoch_time(summary.captured_at).isoformat(),
        size=summary.size,
    )


def _missing(captured_id: int) -> ApiError:
    return ApiError(404, "not_found", f"no captured message {captured_id}")


@router.get(
    "/captured",
    response_model=CapturedPage,
    responses=ERROR_RESPONSES,
    summary="List captured mail",
)
def list_captured_mail(
    _caller: AdminKey,
    engine: ReadEngine,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Only ids below this (paging).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many.")] = 50,
    search: Annotated[
        str | None,
        Query(max_length=200, description="A substring of the subject or an address."),
    ] = None,
) -> CapturedPage:
    with engine.connect() as connection:
        rows = list_captured(connection, before=before, limit=limit + 1, search=search or None)
    page = rows[:limit]
    more = len(rows) > limit
    return CapturedPage(items=[_out(row) for row in page], next=page[-1].id if more else None)


@router.get(
    "/captured/{captured_id}",
    response_model=CapturedDetail,
    responses=ERROR_RESPONSES,
    summary="One captured message: headers, bodies, files",
)
def get_captured_mail(
    captured_id: CapturedId, _caller: AdminKey, engine: ReadEngine
) -> CapturedDetail:
    with engine.connect() as connection:
        found = get_captured(connection, captured_id)
    if found is None:
        raise _missing(captured_id)
    parts = message_parts(found.data)
    return CapturedDetail(
        **_out(found).model_dump(),
        headers=message_headers(found.data),
        text=parts.text,
        html=parts.html,
        attachments=[
            AttachedFileOut(
                filename=f.filename,
                content_type=f.content_type,
                size=f.size,
                content_id=f.content_id,
                inline=f.inline,
            )
            for f in parts.attachments
        ],
    )


@router.get(
    "/captured/{captured_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}, **ERROR_RESPONSES},
    summary="One captured message's exact bytes (.eml)",
)
def get_captured_raw(captured_id: CapturedId, _caller: AdminKey, engine: ReadEngine) -> Response:
    with engine.connect() as connection:
        found = get_captured(connection, captured_id)
    if found is None:
        raise _missing(captured_id)
    return Response(
        found.data,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="captured-{captured_id}.eml"'},
    )


@router.delete(
    "/captured/{captured_id}",
    response_model=Deleted,
    responses=ERROR_RESPONSES,
    summary="Delete one captured message",
)
def delete_captured_mail(
    captured_id: CapturedId, _caller: AdminKey, engine: DatabaseEngine
) -> Deleted:
    with engine.begin() as connection:
        deleted = delete_captured(connection, captured_id)
    if not deleted:
        raise _missing(captured_id)
    return Deleted(deleted=1)


@router.delete(
    "/captured",
    response_model=Deleted,
    responses=ERROR_RESPONSES,
    summary="Delete all captured mail",
)
def delete_all_captured_mail(_caller: AdminKey, engine: DatabaseEngine) -> Deleted:
    with engine.begin() as connection:
        deleted = delete_all_captured(connection)
    return Deleted(deleted=deleted)
