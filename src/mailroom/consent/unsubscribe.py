"""What the public unsubscribe endpoints do.

The web pages come later; the function behind them is here:

- ``POST /unsubscribe/<token>`` with body ``List-Unsubscribe=One-Click`` (RFC 8058 §3.2),
  and the confirm button of the page at ``GET /unsubscribe/<token>``: :func:`unsubscribe`.
  A GET must never unsubscribe by itself: link scanners fetch every URL in a message.
- the mailto in ``List-Unsubscribe`` (RFC 2369 §3.2): inbound processing finds the token in
  the subject and calls :func:`unsubscribe` with ``expected_recipient`` = the sender.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from mailroom.config import Settings
from mailroom.consent import queries as q
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.outbox.event_queries import EventRecord, record_events
from mailroom.outbox.vocabulary import ConsentAction, EventType, SuppressionReason

__all__ = ["UnsubscribeResult", "unsubscribe"]


@dataclass(frozen=True, slots=True)
class UnsubscribeResult:
    """What :func:`unsubscribe` did, for the confirmation page."""

    recipient: str
    scope: str
    action: ConsentAction
    changed: bool = True
    """Whether this request stopped mail that was not stopped already (a second one-click
    POST changes nothing, and records no second ``unsubscribed`` event)."""


def unsubscribe(
    engine: Engine,
    settings: Settings,
    token: str,
    *,
    source: str = "one_click",
    expected_recipient: str | None = None,
    detail: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> UnsubscribeResult:
    """Verify ``token``, then stop the mail it names and record that in the consent log.

    A ``type:`` scope turns that type off in the recipient's preferences (they can turn it on
    again); ``all`` and ``list:`` scopes put the address on the suppression list with reason
    ``unsubscribed``. Doing it twice is harmless. ``source`` says how the request came
    (``one_click``, ``link``, ``mailto``); ``detail`` is kept with the consent record. Each
    request is logged; the first that changes anything also records an ``unsubscribed``
    event (:mod:`mailroom.outbox.event_queries`) in the same transaction.
    """
    claim = UnsubscribeTokens(settings).verify(
        token, expected_recipient=expected_recipient, now=now
    )
    now = time.time() if now is None else now
    record = {**(detail or {}), "token_issued_at": claim.issued_at.isoformat()}
    with engine.begin() as connection:
        if claim.scope.startswith("type:"):
            key = claim.key or claim.recipient
            type_name = claim.scope.removeprefix("type:")
            changed = q.email_preferences(connection, [key], type_name).get(key) is not False
            q.set_email_preference(
                connection,
                claim.key or claim.recipient,
                claim.scope.removeprefix("type:"),
                email=False,
                now=now,
            )
            action = ConsentAction.PREFERENCE_CHANGED
            record["email"] = False
        else:
            changed = not q.active_suppressions(connection, [claim.recipient], [claim.scope], now)
            q.add_suppression(
                connection, claim.recipient, claim.scope, SuppressionReason.UNSUBSCRIBED, now=now
            )
            action = ConsentAction.UNSUBSCRIBED
        q.record_consent(
            connection,
            recipient=claim.recipient,
            action=action,
            scope=claim.scope,
            source=source,
            now=now,
            detail=record,
        )
        if changed:
            event = EventRecord(
                message_pk=None,  # the token names a recipient and a scope, not a message
                recipient=claim.recipient,
                type=EventType.UNSUBSCRIBED,
                at=now,
                detail={"scope": claim.scope, "source": source},
            )
            record_events(connection, [event])
    return UnsubscribeResult(claim.recipient, claim.scope, action, changed)
