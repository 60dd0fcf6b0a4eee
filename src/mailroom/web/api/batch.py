"""``POST /api/v1/messages/batch``: many messages in one request and one transaction.

All or nothing: when any item is at fault nothing is committed, and the 422 lists *every*
faulty item by its index (from 0), so a client fixes the batch in one round and never has to
work out which half went through. Up to ``API_MAX_BATCH_SIZE`` messages (1000 by default).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mailroom.access.apikeys import ApiKey
from mailroom.config import Settings
from mailroom.errors import BatchError, MessageError
from mailroom.outbox.store import BatchItem, Outbox
from mailroom.web.api.direct import direct_route, in_thread, parse_body
from mailroom.web.api.message_models import MessageIn
from mailroom.web.api.messages import ERROR_RESPONSES, idempotency_key, message_error, outgoing
from mailroom.web.auth import Caller, authenticate_header
from mailroom.web.dependencies import ServiceOutbox, ServiceSettings
from mailroom.web.errors import ApiError, ErrorDetail, field_of

__all__ = ["router"]


router = APIRouter(tags=["messages"])


def _shape_errors(exc: RequestValidationError) -> list[ItemError]:
    """The first shape error of each item, by index; none if an error is not in an item."""
    found: dict[int, ItemError] = {}
    for error in exc.errors():
        location = tuple(error.get("loc", ()))
        if location[:2] != ("body", "messages") or len(location) < 3:
            return []
        index = location[2]
        if not isinstance(index, int):
            return []
        field = field_of(location[3:])
        message = str(error.get("msg", "is not valid"))
        detail = ErrorDetail(
            code="invalid", message=f"{field}: {message}" if field else message, field=field
        )
        found.setdefault(index, ItemError(index=index, error=detail))
    return [found[index] for index in sorted(found)]


class BatchItemIn(MessageIn):
    """One message of a batch; its own ``idempotency_key`` works like the header of a single
    send."""

    idempotency_key: str | None = Field(
        default=None,
        description="Up to 200 visible ASCII characters; the same key → the same message.",
    )


class BatchIn(BaseModel):
    """The messages to send, all or none."""

    messages: list[BatchItemIn] = Field(
        min_length=1, description="1 to API_MAX_BATCH_SIZE (1000 by default) messages."
    )


class BatchCreated(BaseModel):
    """The outbox ids, in the order of the request's messages."""

    ids: list[int]


class ItemError(BaseModel):
    """What is wrong with one message of the batch."""

    index: int = Field(description="The message's position in `messages`, from 0.")
    error: ErrorDetail


class BatchErrorBody(BaseModel):
    """A batch refused: the first problem as ``error``, every one by index in ``items``."""

    error: ErrorDetail
    items: list[ItemError] = Field(
        default_factory=list,
        description="Every faulty message by index, whether its shape is wrong or the outbox "
        "refused it (empty only when the request itself is wrong, e.g. no `messages`).",
    )


def _item_error(index: int, error: MessageError) -> ItemError:
    api = message_error(error)
    code = api.code
    field = "idempotency_key" if code == "idempotency_conflict" else api.field
    return ItemError(index=index, error=ErrorDetail(code=code, message=api.message, field=field))


def send_all(caller: ApiKey, outbox: Outbox, settings: Settings, body: BatchIn) -> list[int]:
    """Commit every message of ``body`` (blocking), or none: their ids, in order."""
    limit = settings.API_MAX_BATCH_SIZE
    if len(body.messages) > limit:
        raise ApiError(
            413,
            "batch_too_large",
            f"a batch holds at most {limit} messages (API_MAX_BATCH_SIZE), "
            f"not {len(body.messages)}",
            "messages",
        )
    items: list[BatchItem] = []
    refused: list[ItemError] = []
    for index, item in enumerate(body.messages):
        try:
            key = idempotency_key(caller, item.idempotency_key)
            items.append(outgoing(item, caller, settings, key))
        except ApiError as exc:
            if exc.status != 422:
                raise  # the service's fault (tracking without SECRET_KEY), not the item's
            field = "idempotency_key" if exc.field == "Idempotency-Key" else exc.field
            detail = ErrorDetail(code=exc.code, message=exc.message, field=field)
            refused.append(ItemError(index=index, error=detail))
        except MessageError as exc:
            refused.append(_item_error(index, exc))
    if refused:
        raise _refusal(refused)
    try:
        return outbox.send_batch(items)
    except BatchError as exc:
        raise _refusal([_item_error(i, e) for i, e in exc.errors.items()]) from None


def send_batch(
    body: BatchIn, caller: Caller, outbox: ServiceOutbox, settings: ServiceSettings
) -> BatchCreated:
    return BatchCreated(ids=send_all(caller, outbox, settings, body))


def _batch_of(raw: bytes, content_type: str | None) -> BatchIn:
    """The request's batch; items of the wrong shape (a missing ``to``, a number for a
    string) are refused like those the outbox refuses: every faulty item, by index."""
    try:
        return parse_body(BatchIn, raw, content_type)
    except RequestValidationError as exc:
        items = _shape_errors(exc)
        if not items:
            raise
        raise _refusal(items) from None


async def _send_batch_directly(request: Request) -> Response:
    """:func:`send_batch` without FastAPI's machinery (:mod:`mailroom.web.api.direct`)."""
    state = request.app.state
    authorization = request.headers.get("authorization", "")
    content_type = request.headers.get("content-type")
    raw = await request.body()

    def work() -> list[int]:
        caller = authenticate_header(authorization, state.engine, state.read_engine)
        return send_all(caller, state.outbox, state.settings, _batch_of(raw, content_type))

    ids = await in_thread(work)
    return JSONResponse({"ids": ids}, status_code=201)


router.add_api_route(
    "/messages/batch",
    send_batch,
    methods=["POST"],
    status_code=status.HTTP_201_CREATED,
    response_model=BatchCreated,
    responses=ERROR_RESPONSES | {422: {"model": BatchErrorBody}},
    summary="Send a batch of messages in one transaction",
    route_class_override=direct_route(_send_batch_directly),
)


def _refusal(items: list[ItemError]) -> ApiError:
    first = items[0]
    field = f"messages[{first.index}].{first.error.field}" if first.error.field else None
    return ApiError(
        422,
        "invalid_batch",
        f"{len(items)} of the messages cannot be sent (the first: message {first.index}, "
        f"{first.error.message}); nothing was committed",
        field,
        extra={"items": [item.model_dump() for item in items]},
    )
