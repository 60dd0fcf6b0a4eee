"""``/api/v1/messages``: send one message, read it back, cancel it, retry it.

An ``Idempotency-Key`` is kept per API key (stored as ``api:<key id>:<your key>``): the same
key from the same API key always answers with the same id and never makes a second message;
with other content it is a 409 ``idempotency_conflict``. A ``send`` key reads, cancels and
retries only the messages it sent; another's answer 404, as one that does not exist, so ids
are not confirmed to anyone who may not read them.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import Connection, Engine

from mailroom.access.apikeys import ApiKey
from mailroom.compose.tracking import apply_tracking, tracks
from mailroom.config import Settings
from mailroom.errors import BatchError, IdempotencyConflictError, MessageError, SettingsError
from mailroom.message import content_fingerprint
from mailroom.outbox import operations, queries
from mailroom.outbox.event_queries import events_of
from mailroom.outbox.operations import MessageDetail
from mailroom.outbox.store import BatchItem, Outbox
from mailroom.outbox.vocabulary import ApiKeyScope
from mailroom.web.api.direct import direct_route, parse_body
from mailroom.web.api.message_models import (
    API_KEY_METADATA,
    AttemptOut,
    EventOut,
    MessageCreated,
    MessageIn,
    MessageOut,
    StatusChange,
    epoch_time,
    owner_of,
)
from mailroom.web.auth import Caller, authenticate_header
from mailroom.web.dependencies import DatabaseEngine, ReadEngine, ServiceOutbox
from mailroom.web.errors import ApiError, ErrorBody

__all__ = [
    "ERROR_RESPONSES",
    "idempotency_key",
    "message_error",
    "outgoing",
    "prepared",
    "router",
]

router = APIRouter(tags=["messages"])

_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The message's outbox id.")]
IdempotencyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Up to 200 visible ASCII characters; the same key → the same message.",
    ),
]
# Every route documents the error answers it may give, in the one shape (for the OpenAPI
# document, which schemathesis checks the answers against).
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 413, 422, 503)
}


def idempotency_key(caller: ApiKey, given: str | None) -> str | None:
    """The stored key for the header's value: one namespace per API key."""
    if given is None:
        return None
    if not _KEY_PATTERN.fullmatch(given):
        raise ApiError(
            422,
            "invalid",
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
            "Idempotency-Key",
        )
    return f"api:{caller.id}:{given}"


def outgoing(body: MessageIn, caller: ApiKey, settings: Settings, key: str | None) -> BatchItem:
    """The message to commit for ``body``: the sender's key in its metadata, and the open
    pixel and tracked links its stream asks for (``TRACK_OPENS`` / ``TRACK_CLICKS``). Its
    key is compared on the request as sent, before tracking (whose tokens are new each call).
    """
    message = body.message(caller.id)
    if not any(tracks(settings, body.stream)):
        # Nothing to put in: the message as it is (tracking would parse its addresses only
        # to find there is nothing to do, and the outbox digests it for its key itself).
        return BatchItem(message, body.stream, body.send_at, key)
    try:
        fingerprint = content_fingerprint(message, stream=body.stream) if key else None
        tracked, links = apply_tracking(message, settings, body.stream)
    except SettingsError as exc:
        raise ApiError(503, "misconfigured", str(exc)) from None
    except MessageError:
        # A message these cannot read is one the outbox refuses, naming the field; left to
        # it, so a batch reports every item at fault, not only those found here.
        return BatchItem(message, body.stream, body.send_at, key)
    return BatchItem(tracked, body.stream, body.send_at, key, links, fingerprint)


def message_error(error: MessageError) -> ApiError:
    """A 422 (or 409 for a reused idempotency key) naming the field the outbox refused."""
    if isinstance(error, IdempotencyConflictError):
        return ApiError(
            409,
            "idempotency_conflict",
            "this Idempotency-Key was already used for a different message; a retry must send "
            "the same content, and a new message needs a new key",
            "Idempotency-Key",
        )
    message = str(error).removeprefix(f"{error.field}: ")
    # "header X-Tag" (how the outbox names a header field) is "headers.X-Tag" in the request.
    field = error.field
    if field.startswith("header "):
        field = "headers." + field.removeprefix("header ")
    return ApiError(422, "invalid_message", f"{field}: {message}", field)


def prepared(
    caller: ApiKey, outbox: Outbox, reader: Engine, body: MessageIn, key_header: str | None
) -> tuple[BatchItem, bool]:
    """The message to commit for ``body`` (blocking: it may read), and whether an earlier
    send with the same ``Idempotency-Key`` made it (a replay, answered 200)."""
    key = idempotency_key(caller, key_header)
    replay = False
    if key is not None:
        outbox.ensure_schema()
        with reader.connect() as connection:
            replay = bool(queries.find_by_idempotency_keys(connection, [key]))
    return outgoing(body, caller, outbox.settings, key), replay


def send_message(  # noqa: PLR0917 - FastAPI passes a route's parameters by name
    body: MessageIn,
    caller: Caller,
    outbox: ServiceOutbox,
    reader: ReadEngine,
    response: Response,
    key_header: IdempotencyHeader = None,
) -> MessageCreated:
    """Commit one message to the outbox and answer with its id (201), or with the id of the
    message made earlier for the same ``Idempotency-Key`` (200)."""
    item, replay = prepared(caller, outbox, reader, body, key_header)
    try:
        message_pk = outbox.send_batch([item])[0]
    except MessageError as exc:
        raise message_error(exc) from None
    except BatchError as exc:
        raise message_error(exc.errors[0]) from None
    if replay:
        response.status_code = status.HTTP_200_OK
    return MessageCreated(id=message_pk)


async def _send_message_directly(request: Request) -> Response:
    """:func:`send_message` without FastAPI's machinery (:mod:`mailroom.web.api.direct`),
    committed by the app's group commit (:mod:`mailroom.outbox.group_commit`): the caller is
    authenticated, the body validated and the message composed in its writer thread, and the
    id answered once the commit is on disk."""
    state = request.app.state
    headers = request.headers
    authorization = headers.get("authorization", "")
    content_type = headers.get("content-type")
    key_header = headers.get("idempotency-key")
    raw = await request.body()
    replay = False

    def prepare() -> BatchItem:
        nonlocal replay
        caller = authenticate_header(authorization, state.engine, state.read_engine)
        body = parse_body(MessageIn, raw, content_type)
        item, replay = prepared(caller, state.outbox, state.read_engine, body, key_header)
        return item

    try:
        message_pk = await asyncio.wrap_future(state.group_commit.submit(prepare))
    except MessageError as exc:
        raise message_error(exc) from None
    return JSONResponse({"id": message_pk}, status_code=200 if replay else 201)


router.add_api_route(
    "/messages",
    send_message,
    methods=["POST"],
    status_code=status.HTTP_201_CREATED,
    response_model=MessageCreated,
    responses={
        200: {"model": MessageCreated, "description": "A repeated Idempotency-Key"},
        **ERROR_RESPONSES,
    },
    summary="Send one message",
    route_class_override=direct_route(_send_message_directly),
)


def _readable(connection: Connection, message_pk: int, caller: ApiKey) -> MessageDetail:
    """The message, if it exists and ``caller`` may see it; else the one 404."""
    detail = operations.message_detail(connection, message_pk)
    if detail is None or (
        caller.scope != ApiKeyScope.ADMIN and owner_of(detail.extra) != caller.id
    ):
        raise ApiError(404, "not_found", f"no message {message_pk}")
    return detail


@router.get(
    "/messages/{message_pk}",
    response_model=MessageOut,
    responses=ERROR_RESPONSES,
    summary="Read a message: status, attempts, events",
)
def get_message(message_pk: MessageId, caller: Caller, engine: ReadEngine) -> MessageOut:
    with engine.connect() as connection:
        detail = _readable(connection, message_pk, caller)
        tries = operations.attempts_for(connection, message_pk)
        events = events_of(connection, message_pk)
    metadata = {k: v for k, v in (detail.extra or {}).items() if k != API_KEY_METADATA}
    return MessageOut(
        id=detail.id,
        message_id=detail.message_id,
        status=detail.status.value,
        stream=detail.stream,
        sender=detail.sender,
        recipients=list(detail.recipients),
        subject=detail.subject,
        attempts=detail.attempts,
        created_at=epoch_time(detail.created_at),
        due_at=epoch_time(detail.due_at),
        updated_at=epoch_time(detail.updated_at),
        sent_at=None if detail.sent_at is None else epoch_time(detail.sent_at),
        last_error=detail.last_error,
        metadata=metadata,
        attempt_log=[
            AttemptOut(
                attempt=a.attempt,
                at=epoch_time(a.at),
                duration_ms=a.duration_ms,
                recipient=a.recipient,
                transport=a.transport,
                outcome=a.outcome,
                code=a.code,
                enhanced_status=a.enhanced_status,
                server_text=a.server_text,
                possible_duplicate=a.possible_duplicate,
            )
            for a in tries
        ],
        events=[
            EventOut(
                type=str(e.type),
                recipient=e.recipient,
                at=epoch_time(e.at),
                label=None if e.label is None else str(e.label),
                link_index=e.link_index,
                detail=dict(e.detail) if e.detail is not None else None,
            )
            for e in events
        ],
    )


def _change(
    engine: DatabaseEngine, message_pk: int, caller: ApiKey, *, retry: bool
) -> StatusChange:
    with engine.begin() as connection:
        detail = _readable(connection, message_pk, caller)
        if retry:
            changed = operations.retry(connection, now=time.time(), ids=[message_pk])
            allowed = operations.RETRYABLE
        else:
            changed = operations.cancel(connection, now=time.time(), ids=[message_pk])
            allowed = operations.CANCELLABLE
        after = operations.message_detail(connection, message_pk)
    if not changed or after is None:
        what, code = ("retried", "not_retryable") if retry else ("cancelled", "not_cancellable")
        states = ", ".join(s.value for s in allowed)
        raise ApiError(
            409,
            code,
            f"message {message_pk} is {detail.status.value}; only {states} messages can be {what}",
        )
    return StatusChange(id=message_pk, status=after.status.value)


@router.post(
    "/messages/{message_pk}/cancel",
    response_model=StatusChange,
    responses=ERROR_RESPONSES,
    summary="Cancel a queued, scheduled or deferred message",
)
def cancel_message(message_pk: MessageId, caller: Caller, engine: DatabaseEngine) -> StatusChange:
    """409 ``not_cancellable`` for a message in any other state (a worker may hold it)."""
    return _change(engine, message_pk, caller, retry=False)


@router.post(
    "/messages/{message_pk}/retry",
    response_model=StatusChange,
    responses=ERROR_RESPONSES,
    summary="Put a failed, deferred or cancelled message back in the queue",
)
def retry_message(message_pk: MessageId, caller: Caller, engine: DatabaseEngine) -> StatusChange:
    """409 ``not_retryable`` for a message in any other state."""
    return _change(engine, message_pk, caller, retry=True)
