"""Per-recipient, per-type email preferences: on or off.

A recipient is named by the application's user key when it gives one (so a preference
survives a change of address), else by the normalised address. A type whose default is off
reaches only recipients who turned it on; a type recipients may not turn off (a password
reset) ignores preferences, and refuses to store "off".
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, Engine

from mailroom.consent import queries as q
from mailroom.consent.scopes import type_scope
from mailroom.errors import NotificationError
from mailroom.outbox.vocabulary import ConsentAction

__all__ = ["EmailChoice", "email_choices", "set_email_preference"]


class EmailChoice:
    """Why email is on or off for one recipient (the reasons recorded for skips)."""

    ON = "on"
    OPTED_OUT = "opted_out"
    """The recipient turned this type off."""
    NOT_OPTED_IN = "not_opted_in"
    """The type is off by default and the recipient did not turn it on."""


def email_choices(
    connection: Connection,
    recipients: Iterable[str],
    notification_type: str,
    *,
    default_on: bool,
    may_opt_out: bool,
) -> dict[str, str]:
    """For each recipient key: :attr:`EmailChoice.ON`, ``OPTED_OUT`` or ``NOT_OPTED_IN``."""
    keys = list(dict.fromkeys(recipients))
    if not may_opt_out:
        return dict.fromkeys(keys, EmailChoice.ON)
    stored = q.email_preferences(connection, keys, notification_type)
    choices: dict[str, str] = {}
    for key in keys:
        choice = stored.get(key)
        if choice is True or (choice is None and default_on):
            choices[key] = EmailChoice.ON
        else:
            choices[key] = EmailChoice.OPTED_OUT if choice is False else EmailChoice.NOT_OPTED_IN
    return choices


def set_email_preference(
    engine: Engine,
    recipient: str,
    notification_type: str,
    email: bool,
    *,
    may_opt_out: bool = True,
    source: str = "api",
    now: float | None = None,
) -> None:
    """Turn email for one type on or off for one recipient, and record it in the consent log.

    ``recipient`` is the app's user key or the normalised address, as ``notify`` uses it.
    """
    if not email and not may_opt_out:
        raise NotificationError(
            f"{notification_type}: recipients may not turn this notification type off"
        )
    now = time.time() if now is None else now
    with engine.begin() as connection:
        q.set_email_preference(connection, recipient, notification_type, email=email, now=now)
        q.record_consent(
            connection,
            recipient=recipient,
            action=ConsentAction.PREFERENCE_CHANGED,
            scope=type_scope(notification_type),
            source=source,
            now=now,
            detail={"email": email},
        )
