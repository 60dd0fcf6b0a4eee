"""``GET|PUT /api/v1/preferences/{recipient}``: a recipient's email choice for each declared
notification type (admin keys only). ``recipient`` is your stable key for the person
(``user:42``) when you give ``notify`` one, else their address (compared normalised). Every
change is written to the consent log with source ``api``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from mailroom.consent.preferences import EmailChoice, email_choices, set_email_preference
from mailroom.notifications.recipients import normalized_or_none
from mailroom.web.api.messages import ERROR_RESPONSES
from mailroom.web.auth import AdminKey
from mailroom.web.dependencies import DatabaseEngine, ServiceNotifier
from mailroom.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(tags=["preferences"])

RecipientKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        description="Your key for the person (`user:42`), or their address.",
    ),
]


class TypeChoice(BaseModel):
    """One notification type, and whether this recipient gets it by email."""

    type: str
    description: str
    email: bool = Field(description="Whether they get it.")
    choice: str = Field(description="on, opted_out (they turned it off) or not_opted_in.")
    may_opt_out: bool = Field(description="False: sent whatever they chose (a password reset).")
    default_on: bool


class Preferences(BaseModel):
    recipient: str = Field(description="The key the choices are stored under.")
    types: list[TypeChoice]


class PreferencesIn(BaseModel):
    """Choices to store: type → whether to send it by email. Types left out keep theirs."""

    model_config = ConfigDict(extra="forbid")

    types: dict[str, bool] = Field(description="Notification type → email on (true) or off.")


def _key(recipient: str) -> str:
    """The stored key: an address normalised (as ``notify`` keeps it), else as given."""
    return (normalized_or_none(recipient) if "@" in recipient else None) or recipient


def _read(engine: DatabaseEngine, notifier: ServiceNotifier, key: str) -> Preferences:
    choices: list[TypeChoice] = []
    with engine.connect() as connection:
        for ntype in sorted(notifier.registry, key=lambda t: t.name):
            choice = email_choices(
                connection,
                [key],
                ntype.name,
                default_on=ntype.default_on,
                may_opt_out=ntype.may_opt_out,
            )[key]
            choices.append(
                TypeChoice(
                    type=ntype.name,
                    description=ntype.description,
                    email=choice == EmailChoice.ON,
                    choice=choice,
                    may_opt_out=ntype.may_opt_out,
                    default_on=ntype.default_on,
                )
            )
    return Preferences(recipient=key, types=choices)


@router.get(
    "/preferences/{recipient}",
    response_model=Preferences,
    responses=ERROR_RESPONSES,
    summary="A recipient's email choices",
)
def get_preferences(
    recipient: RecipientKey, _caller: AdminKey, engine: DatabaseEngine, notifier: ServiceNotifier
) -> Preferences:
    return _read(engine, notifier, _key(recipient))


@router.put(
    "/preferences/{recipient}",
    response_model=Preferences,
    responses=ERROR_RESPONSES,
    summary="Change a recipient's email choices",
)
def put_preferences(
    recipient: RecipientKey,
    body: PreferencesIn,
    _caller: AdminKey,
    engine: DatabaseEngine,
    notifier: ServiceNotifier,
) -> Preferences:
    """All or none: an unknown type, or "off" for a type recipients may not turn off, is a
    422 naming it, and nothing is stored."""
    key = _key(recipient)
    registry = notifier.registry
    for name, email in body.types.items():
        if name not in registry:
            raise ApiError(
                422, "unknown_notification_type", f"no notification type {name!r}", f"types.{name}"
            )
        if not email and not registry.get(name).may_opt_out:
            raise ApiError(
                422,
                "not_optional",
                f"{name}: recipients may not turn this notification type off",
                f"types.{name}",
            )
    for name, email in body.types.items():
        set_email_preference(
            engine, key, name, email, may_opt_out=registry.get(name).may_opt_out, source="api"
        )
    return _read(engine, notifier, key)
