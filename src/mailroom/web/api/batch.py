"""``POST /api/v1/messages/batch``: many messages in one request and one transaction.

All or nothing: when any item is at fault nothing is committed, and the 422 lists *every*
faulty item by its index (from 0), so a client fixes the batch in one round and never has to
work out which half went through. Up to ``API_MAX_BATCH_SIZE`` messages (1000 by default).
"""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from mailroom.errors import BatchError, MessageError
from mailroom.outbox.store import BatchItem
from mailroom.web.api.message_models import MessageIn
from mailroom.web.api.messages import _ERRORS, idempotency_key, message_error, outgoing
from mailroom.web.auth import Caller
from mailroom.web.dependencies import ServiceOutbox, ServiceSettings
from mailroom.web.errors import ApiError, ErrorDetail

__all__ = ["router"]

router = APIRouter(tags=["messages"])


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
        description="Every message the outbox refused, by index (empty when the request's shape "
        "is wrong: then `error.field` names the first place, e.g. `messages[3].to`).",
    )


def _item_error(index: int, error: MessageError) -> ItemError:
    api = message_error(error)
    code = api.code
    field = "idempotency_key" if code == "idempotency_conflict" else api.field
    return ItemError(index=index, error=ErrorDetail(code=code, message=api.message, field=field))


@router.post(
    "/messages/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchCreated,
    responses=_ERRORS | {422: {"model": BatchErrorBody}},
    summary="Send a batch of messages in one transaction",
)
def send_batch(
    body: BatchIn, caller: Caller, outbox: ServiceOutbox, settings: ServiceSettings
) -> BatchCreated:
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
        ids = outbox.send_batch(items)
    except BatchError as exc:
        raise _refusal([_item_error(i, e) for i, e in exc.errors.items()]) from None
    return BatchCreated(ids=ids)


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
