"""The suppression list: who must not be mailed, and the checks made against it.

An entry is (normalised address, scope) → reason (:class:`SuppressionReason`), with an
optional expiry. It is checked when a notification is enqueued (:func:`suppressed_among`;
the recipient is then recorded as suppressed), and again by a worker when it claims messages
(:func:`suppressed_for_messages`), since an unsubscribe or a bounce may have come in since.
An ``unsubscribed`` entry does not stop mail the recipient cannot turn off (a password reset
they asked for); a hard bounce, complaint or manual entry stops everything.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Engine

from mailroom.consent import queries as q
from mailroom.consent.scopes import SCOPE_ALL, check_scope, normalize_address
from mailroom.errors import MessageError
from mailroom.outbox.lease_queries import ClaimedMessage
from mailroom.outbox.vocabulary import (
    BLOCKS_REQUIRED_MAIL,
    ConsentAction,
    ConsentFacts,
    SuppressionReason,
)

__all__ = ["suppress", "suppressed_among", "suppressed_for_messages", "unsuppress"]

_PLAIN_SEND = ConsentFacts((SCOPE_ALL,), required=True)
"""The facts of a message sent without any (plain ``mailroom.send``): the caller chose to
send it, so only bounces, complaints and manual entries stop it."""


def suppress(
    engine: Engine,
    address: str,
    reason: SuppressionReason,
    *,
    scope: str = SCOPE_ALL,
    expires_at: float | None = None,
    note: str | None = None,
    source: str = "api",
    now: float | None = None,
) -> None:
    """Put an address on the suppression list (a bounce, a complaint, an operator's choice)."""
    normalized = normalize_address(address)
    scope = check_scope(scope)
    now = time.time() if now is None else now
    action = (
        ConsentAction.UNSUBSCRIBED
        if reason is SuppressionReason.UNSUBSCRIBED
        else ConsentAction.SUPPRESSED
    )
    with engine.begin() as connection:
        q.add_suppression(
            connection, normalized, scope, reason, now=now, expires_at=expires_at, note=note
        )
        q.record_consent(
            connection,
            recipient=normalized,
            action=action,
            scope=scope,
            source=source,
            now=now,
            detail={"reason": reason.value, "expires_at": expires_at},
        )


def unsuppress(
    engine: Engine,
    address: str,
    *,
    scope: str = SCOPE_ALL,
    source: str = "api",
    now: float | None = None,
) -> bool:
    """Take an address off the suppression list for ``scope``; whether it was on it."""
    normalized = normalize_address(address)
    scope = check_scope(scope)
    now = time.time() if now is None else now
    with engine.begin() as connection:
        removed = q.remove_suppression(connection, normalized, scope)
        if removed:
            q.record_consent(
                connection,
                recipient=normalized,
                action=ConsentAction.UNSUPPRESSED,
                scope=scope,
                source=source,
                now=now,
            )
    return removed


def suppressed_among(
    connection: Connection,
    recipients: Iterable[str],
    scopes: Iterable[str],
    now: float,
    *,
    required: bool = False,
) -> dict[str, SuppressionReason]:
    """At enqueue: the recipients (as given) suppressed for any of ``scopes`` at ``now``,
    with the reason.

    ``scopes`` should include ``all``. With ``required`` (mail the recipient may not turn
    off), only hard bounces, complaints and manual entries count.
    """
    by_normalized: dict[str, list[str]] = {}
    for recipient in recipients:
        try:
            by_normalized.setdefault(normalize_address(recipient), []).append(recipient)
        except MessageError:
            continue  # not an address we could send to anyway; build_envelope says why
    found: dict[str, SuppressionReason] = {}
    for entry in q.active_suppressions(connection, by_normalized, scopes, now):
        if required and entry.reason not in BLOCKS_REQUIRED_MAIL:
            continue
        for recipient in by_normalized[entry.address]:
            found.setdefault(recipient, entry.reason)
    return found


def suppressed_for_messages(
    connection: Connection, claimed: Sequence[ClaimedMessage], now: float
) -> dict[int, dict[str, SuppressionReason]]:
    """At claim, before delivery: the suppressed recipients of each claimed message, by id.

    Only messages with at least one suppressed recipient appear. The scopes and whether the
    mail is required come with the claimed row (its consent facts, given by ``notify``); a
    message without them (plain ``mailroom.send``) is required mail checked against ``all``.
    The messages are not read again: at most two queries for the whole batch, and one indexed
    look when the suppression list is empty (the common case).
    """
    if not claimed or not q.any_suppressions(connection):
        return {}
    # Each recipient is normalised once: the addresses to look up and the matching below
    # both use it. One that cannot be parsed is never sent to anyway (build_envelope says why).
    wanted: list[tuple[int, ConsentFacts, list[tuple[str, str]]]] = []
    scopes: set[str] = {SCOPE_ALL}
    for message in claimed:
        facts = message.consent or _PLAIN_SEND
        scopes.update(facts.scopes)
        normalized: list[tuple[str, str]] = []
        for recipient in message.recipients:
            try:
                normalized.append((recipient, normalize_address(recipient)))
            except MessageError:
                continue
        wanted.append((message.id, facts, normalized))
    addresses = {address for _, _, pairs in wanted for _, address in pairs}
    entries = q.active_suppressions(connection, addresses, scopes, now)
    index: dict[tuple[str, str], SuppressionReason] = {
        (e.address, e.scope): e.reason for e in entries
    }
    result: dict[int, dict[str, SuppressionReason]] = {}
    for message_pk, facts, pairs in wanted:
        for recipient, address in pairs:
            for scope in facts.scopes:
                reason = index.get((address, scope))
                if reason is not None and (not facts.required or reason in BLOCKS_REQUIRED_MAIL):
                    result.setdefault(message_pk, {})[recipient] = reason
                    break
    return result
