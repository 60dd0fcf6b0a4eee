"""``POST /api/v1/notifications``: a notification of a declared type, composed per recipient.

The types are those of the settings file (``[notification_types."NAME"]``) and those
registered from Python; ``notify`` checks preferences and the suppression list, renders the
template for each recipient and commits one message each. The answer names the outbox ids and
every recipient skipped, with the reason (``opted_out``, ``suppressed`` with its cause...).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mailroom.errors import MessageError, NotificationError
from mailroom.notifications import Recipient
from mailroom.outbox.vocabulary import NotificationOutcome
from mailroom.web.api.message_models import API_KEY_METADATA
from mailroom.web.api.messages import (
    ERROR_RESPONSES,
    IdempotencyHeader,
    idempotency_key,
    message_error,
)
from mailroom.web.auth import Caller
from mailroom.web.dependencies import ServiceNotifier
from mailroom.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["notifications"])


class Person(BaseModel):
    """A recipient or actor with more than an address."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=998, description="Their address.")
    name: str = Field(default="", max_length=500, description="Their name, for the greeting.")
    key: str | None = Field(
        default=None,
        max_length=255,
        description="Your stable id for them (`user:42`): their preferences follow it.",
    )

    def recipient(self) -> Recipient:
        return Recipient(self.email, self.name, self.key)


class NotificationIn(BaseModel):
    """A notification to send."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, description="A declared notification type.")
    to: list[str | Person] = Field(
        min_length=1,
        max_length=1000,
        description="Recipients: addresses (`Ada <ada@example.com>`) or objects.",
    )
    context: dict[str, Any] = Field(default_factory=dict, description="Template variables.")
    actor: str | Person | None = Field(
        default=None,
        description="Who caused it: the sender reads '<actor> via <app>'; they are not notified.",
    )
    link: str | None = Field(
        default=None, max_length=2000, description="A path in your app, made absolute."
    )
    send_at: AwareDatetime | None = Field(default=None, description="Send no earlier than this.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Your own JSON data.")


class Queued(BaseModel):
    recipient: str
    id: int = Field(description="The outbox id of their message.")


class Skipped(BaseModel):
    recipient: str
    outcome: str = Field(description="`skipped` or `suppressed`.")
    reason: str = Field(
        description="no_address, opted_out, not_opted_in, is_actor, duplicate, invalid_address, "
        "invalid_message, idempotency_conflict, or the suppression's reason."
    )


class NotificationResult(BaseModel):
    """What the call did, recipient by recipient."""

    type: str
    outbox_ids: list[int] = Field(description="One per recipient sent to.")
    queued: list[Queued]
    skipped: list[Skipped]


def _person(value: str | Person) -> object:
    return value.recipient() if isinstance(value, Person) else value


@router.post(
    "/notifications",
    status_code=status.HTTP_201_CREATED,
    response_model=NotificationResult,
    responses=ERROR_RESPONSES,
    summary="Send a notification of a declared type",
)
def send_notification(
    body: NotificationIn,
    caller: Caller,
    notifier: ServiceNotifier,
    key_header: IdempotencyHeader = None,
) -> NotificationResult:
    """The same ``Idempotency-Key`` never notifies the same address twice."""
    if body.type not in notifier.registry:
        known = ", ".join(sorted(t.name for t in notifier.registry)) or "none"
        raise ApiError(
            422,
            "unknown_notification_type",
            f"no notification type {body.type!r}; declared: {known}",
            "type",
        )
    try:
        result = notifier.notify(
            body.type,
            [_person(value) for value in body.to],
            context=body.context,
            actor=None if body.actor is None else _person(body.actor),
            link=body.link,
            idempotency_key=idempotency_key(caller, key_header),
            send_at=body.send_at,
            metadata={**body.metadata, API_KEY_METADATA: caller.id},
        )
    except MessageError as exc:
        raise message_error(exc) from None
    except NotificationError as exc:
        raise ApiError(422, "invalid_notification", str(exc), "type") from None
    return NotificationResult(
        type=result.notification_type,
        outbox_ids=result.outbox_ids,
        queued=[
            Queued(recipient=o.recipient, id=o.message_pk)
            for o in result.outcomes
            if o.message_pk is not None
        ],
        skipped=[
            Skipped(recipient=o.recipient, outcome=o.outcome.value, reason=o.reason or "")
            for o in result.outcomes
            if o.outcome is not NotificationOutcome.QUEUED
        ],
    )
