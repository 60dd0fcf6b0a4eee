"""``/api/v1/suppressions``: the suppression list — list (keyset paging), add, remove (admin
keys only). Every change goes through :mod:`mailroom.consent.suppression`, which writes the
consent log, here with source ``api``."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mailroom.consent.listing import SuppressionEntry, list_suppressions
from mailroom.consent.scopes import SCOPE_ALL, check_scope, normalize_address
from mailroom.consent.suppression import suppress, unsuppress
from mailroom.errors import MessageError
from mailroom.outbox.vocabulary import SuppressionReason
from mailroom.web.api.message_models import epoch_time
from mailroom.web.api.messages import ERROR_RESPONSES
from mailroom.web.auth import AdminKey
from mailroom.web.dependencies import DatabaseEngine, ReadEngine
from mailroom.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["suppressions"])

_SOURCE = "api"
ScopeQuery = Annotated[
    str,
    Query(max_length=200, description="`all`, `type:<notification type>` or `list:<name>`."),
]


class SuppressionOut(BaseModel):
    """One entry: mail to ``address`` in ``scope`` is withheld."""

    id: int = Field(description="The entry's id (pages are cut at it).")
    address: str = Field(description="The address, normalised (lower-cased addr-spec).")
    scope: str
    reason: SuppressionReason
    created_at: datetime
    expires_at: datetime | None = Field(description="When it stops applying; null: never.")
    note: str | None


class SuppressionPage(BaseModel):
    """Oldest first. ``next``: pass it as ``?after=`` for the next page; null at the end."""

    items: list[SuppressionOut]
    next: int | None


class SuppressionIn(BaseModel):
    """An address to stop mailing."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=1, max_length=998, description="The address.")
    scope: str = Field(default=SCOPE_ALL, max_length=200, description="What it covers.")
    reason: SuppressionReason = Field(
        default=SuppressionReason.MANUAL,
        description="`manual`, `hard_bounce` and `complaint` stop all mail; `unsubscribed` "
        "lets mail the recipient may not turn off (a password reset) through.",
    )
    expires_at: AwareDatetime | None = Field(default=None, description="Null: never expires.")
    note: str | None = Field(default=None, max_length=1000, description="Why, for operators.")


class Suppressed(BaseModel):
    address: str = Field(description="The address as stored (normalised).")
    scope: str
    reason: SuppressionReason


class Removed(BaseModel):
    address: str
    scope: str
    removed: bool


def _out(entry: SuppressionEntry) -> SuppressionOut:
    return SuppressionOut(
        id=entry.id,
        address=entry.address,
        scope=entry.scope,
        reason=entry.reason,
        created_at=epoch_time(entry.created_at),
        expires_at=None if entry.expires_at is None else epoch_time(entry.expires_at),
        note=entry.note,
    )


def _invalid(error: MessageError) -> ApiError:
    message = str(error).removeprefix(f"{error.field}: ")
    return ApiError(422, "invalid", f"{error.field}: {message}", error.field)


@router.get(
    "/suppressions",
    response_model=SuppressionPage,
    responses=ERROR_RESPONSES,
    summary="List the suppression list",
)
def list_entries(
    _caller: AdminKey,
    engine: ReadEngine,
    after: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Only ids above this (paging).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="At most this many.")] = 100,
    search: Annotated[
        str | None, Query(max_length=320, description="A piece of the address.")
    ] = None,
    scope: Annotated[str | None, Query(max_length=200, description="Only this scope.")] = None,
) -> SuppressionPage:
    try:
        with engine.connect() as connection:
            rows = list_suppressions(
                connection, after=after, limit=limit + 1, search=search or None, scope=scope
            )
    except MessageError as exc:
        raise _invalid(exc) from None
    page = rows[:limit]
    return SuppressionPage(
        items=[_out(row) for row in page], next=page[-1].id if len(rows) > limit else None
    )


@router.post(
    "/suppressions",
    status_code=status.HTTP_201_CREATED,
    response_model=Suppressed,
    responses=ERROR_RESPONSES,
    summary="Add an address to the suppression list",
)
def add_entry(body: SuppressionIn, _caller: AdminKey, engine: DatabaseEngine) -> Suppressed:
    """An entry already there for the address and scope takes the new reason and expiry."""
    try:
        address = normalize_address(body.address)
        scope = check_scope(body.scope)
    except MessageError as exc:
        field = "address" if exc.field != "scope" else "scope"
        raise ApiError(422, "invalid", f"{field}: {exc}", field) from None
    suppress(
        engine,
        address,
        body.reason,
        scope=scope,
        expires_at=None if body.expires_at is None else body.expires_at.timestamp(),
        note=body.note,
        source=_SOURCE,
        now=time.time(),
    )
    return Suppressed(address=address, scope=scope, reason=body.reason)


@router.delete(
    "/suppressions/{address}",
    response_model=Removed,
    responses=ERROR_RESPONSES,
    summary="Take an address off the suppression list",
)
def remove_entry(
    address: Annotated[str, Path(min_length=1, max_length=998, description="The address.")],
    _caller: AdminKey,
    engine: DatabaseEngine,
    scope: ScopeQuery = SCOPE_ALL,
) -> Removed:
    """404 when the address is not on the list for that scope."""
    try:
        normalized = normalize_address(address)
        checked = check_scope(scope)
    except MessageError as exc:
        field = "address" if exc.field != "scope" else "scope"
        raise ApiError(422, "invalid", f"{field}: {exc}", field) from None
    if not unsuppress(engine, normalized, scope=checked, source=_SOURCE, now=time.time()):
        raise ApiError(404, "not_found", f"{normalized} is not suppressed for {checked}")
    return Removed(address=normalized, scope=checked, removed=True)
