"""The preference centre: what one recipient gets, and their changes to it.

The page at ``/preferences/<token>`` shows every notification type the recipient may turn
off, each on or off, and "stop everything" (a suppression of scope ``all``); saving it calls
:func:`save_centre`. Which types are offered is decided here (:func:`offered_types`), from
the declarations the caller hands over — the notification registry sits above consent, so
the caller passes its types, and the settings file's — and the web layer only renders.

Only what changes is written, each change with its consent-log row (source
``preferences``), all in one transaction. Turning "stop everything" off removes only an
``unsubscribed`` entry — one the recipient made; a hard bounce or a complaint stays.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection, Engine

from mailroom.config import NotificationTypeSetting
from mailroom.consent import queries as q
from mailroom.consent.preferences import EmailChoice, email_choices
from mailroom.consent.scopes import SCOPE_ALL, type_scope
from mailroom.consent.tokens import TokenClaim
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.vocabulary import ConsentAction, EventType, SuppressionReason

__all__ = [
    "CENTRE_SOURCE",
    "CentreState",
    "DeclaredType",
    "OfferedType",
    "TypeState",
    "offered_types",
    "read_centre",
    "save_centre",
]

CENTRE_SOURCE = "preferences"
"""The consent log's source of a change made in the preference centre."""


@dataclass(frozen=True, slots=True)
class OfferedType:
    """A notification type the recipient may turn off."""

    name: str
    description: str
    default_on: bool


class DeclaredType(Protocol):
    """What the centre needs of a registered notification type (the registry's
    ``NotificationType`` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def default_on(self) -> bool: ...
    @property
    def may_opt_out(self) -> bool: ...


def offered_types(
    registered: Iterable[DeclaredType],
    declared: Mapping[str, NotificationTypeSetting],
    token_type: str | None,
) -> list[OfferedType]:
    """The notification types a recipient may turn off, by name: those ``registered`` in this
    process, those ``declared`` in the settings file (``NOTIFICATION_TYPES``), and the one the
    token was made for (registered in the application's process, perhaps, and not in this
    one). A type that may not be turned off (a password reset) is never offered."""
    found: dict[str, OfferedType] = {}
    for ntype in registered:
        if ntype.may_opt_out:
            label = ntype.description or ntype.name
            found[ntype.name] = OfferedType(ntype.name, label, ntype.default_on)
    for name, setting in declared.items():
        if setting.may_opt_out:
            found[name] = OfferedType(name, setting.description or name, setting.default_on)
    if token_type and token_type not in found:
        found[token_type] = OfferedType(token_type, token_type, True)
    return [found[name] for name in sorted(found)]


@dataclass(frozen=True, slots=True)
class TypeState:
    name: str
    description: str
    email: bool


@dataclass(frozen=True, slots=True)
class CentreState:
    """What the page shows."""

    recipient: str
    types: tuple[TypeState, ...]
    stopped_all: bool
    """On the suppression list for everything (``all``), whatever the reason."""


def read_centre(
    engine: Engine, claim: TokenClaim, offered: Sequence[OfferedType], *, now: float | None = None
) -> CentreState:
    """The recipient's state for each offered type, and whether everything is stopped."""
    now = time.time() if now is None else now
    with engine.connect() as connection:
        return _state(connection, claim, offered, now)


def save_centre(
    engine: Engine,
    claim: TokenClaim,
    offered: Sequence[OfferedType],
    wanted: Mapping[str, bool],
    *,
    stop_all: bool,
    now: float | None = None,
) -> CentreState:
    """Store the recipient's choices (``wanted``: type name → email on; an offered type not
    named is off, as an unticked box) and "stop everything"; the state after."""
    now = time.time() if now is None else now
    key = claim.key or claim.recipient
    with engine.begin() as connection:
        before = _state(connection, claim, offered, now)
        for state in before.types:
            email = bool(wanted.get(state.name, False))
            if email == state.email:
                continue
            q.set_email_preference(connection, key, state.name, email=email, now=now)
            scope = type_scope(state.name)
            change = {"email": email}
            _log(connection, claim, ConsentAction.PREFERENCE_CHANGED, scope, now, detail=change)
        if stop_all and not before.stopped_all:
            q.add_suppression(
                connection, claim.recipient, SCOPE_ALL, SuppressionReason.UNSUBSCRIBED, now=now
            )
            _log(connection, claim, ConsentAction.UNSUBSCRIBED, SCOPE_ALL, now)
            event = EventRecord(
                None,
                claim.recipient,
                EventType.UNSUBSCRIBED,
                now,
                detail={"scope": SCOPE_ALL, "source": CENTRE_SOURCE},
            )
            record_events(connection, [event])
        elif not stop_all and before.stopped_all:
            entries = q.active_suppressions(connection, [claim.recipient], [SCOPE_ALL], now)
            if all(entry.reason is SuppressionReason.UNSUBSCRIBED for entry in entries):
                q.remove_suppression(connection, claim.recipient, SCOPE_ALL)
                _log(connection, claim, ConsentAction.UNSUPPRESSED, SCOPE_ALL, now)
        return _state(connection, claim, offered, now)


def _state(
    connection: Connection, claim: TokenClaim, offered: Sequence[OfferedType], now: float
) -> CentreState:
    key = claim.key or claim.recipient
    types = []
    for offer in offered:
        choice = email_choices(
            connection, [key], offer.name, default_on=offer.default_on, may_opt_out=True
        )[key]
        types.append(TypeState(offer.name, offer.description, choice == EmailChoice.ON))
    stopped = bool(q.active_suppressions(connection, [claim.recipient], [SCOPE_ALL], now))
    return CentreState(claim.recipient, tuple(types), stopped)


def _log(
    connection: Connection,
    claim: TokenClaim,
    action: ConsentAction,
    scope: str,
    now: float,
    *,
    detail: Mapping[str, object] | None = None,
) -> None:
    q.record_consent(
        connection,
        recipient=claim.recipient,
        action=action,
        scope=scope,
        source=CENTRE_SOURCE,
        now=now,
        detail=detail,
    )
