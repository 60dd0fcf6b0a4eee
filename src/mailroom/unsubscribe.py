"""Unsubscribe tokens, the suppression list and the consent log.

**Tokens.** An unsubscribe link carries a token: the recipient's address, an optional app
user key, the scope (``all``, ``type:<name>`` or ``list:<name>``) and the issue time, signed
with HMAC-SHA256 under ``SECRET_KEY`` (itsdangerous, which compares signatures in constant
time). It needs no login, cannot be forged or altered (every byte is covered by the signature,
and a non-canonical base64 spelling is refused too) and cannot be enumerated (nothing in it is
sequential or guessable). Every failure — altered, expired, another recipient's, not a token
at all — raises the same :class:`~mailroom.errors.InvalidTokenError`, so an attacker learns
nothing from the answer. The payload is signed, not encrypted: the address in it is visible to
whoever holds the link, which is the recipient.

**Endpoints.** The web pages come later; the functions behind them are here:

- ``POST /unsubscribe/<token>`` with body ``List-Unsubscribe=One-Click`` (RFC 8058 §3.2),
  and the confirm button of the page at ``GET /unsubscribe/<token>``: :func:`unsubscribe`.
  A GET must never unsubscribe by itself: link scanners fetch every URL in a message.
- the mailto in ``List-Unsubscribe`` (RFC 2369 §3.2): inbound processing finds the token in
  the subject and calls :func:`unsubscribe` with ``expected_recipient`` = the sender.

**Suppression list.** (normalised address, scope) → reason (:class:`SuppressionReason`), with
an optional expiry. Checked when a notification is enqueued (it is then recorded as
suppressed), and by workers before delivery with :func:`suppressed_for_messages`. An
``unsubscribed`` entry does not stop mail the recipient cannot turn off (a password reset they
asked for); a hard bounce, complaint or manual entry stops everything.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode
from sqlalchemy import Connection, Engine, select

from mailroom.config import Settings
from mailroom.errors import InvalidTokenError, MessageError
from mailroom.message import Address
from mailroom.outbox import notification_queries as q
from mailroom.outbox.schema import (
    BLOCKS_REQUIRED_MAIL,
    ConsentAction,
    SuppressionReason,
    messages,
)

__all__ = [
    "SCOPE_ALL",
    "TokenClaim",
    "UnsubscribeTokens",
    "list_scope",
    "normalize_address",
    "suppress",
    "suppressed_among",
    "suppressed_for_messages",
    "type_scope",
    "unsubscribe",
    "unsubscribe_url",
    "unsuppress",
]

logger = logging.getLogger(__name__)

SCOPE_ALL = "all"
_SALT = "mailroom.unsubscribe.v1"
_MAX_TOKEN_CHARS = 2000  # far above any real token; refuse before any decoding work

METADATA_SCOPES = "mailroom_scopes"
"""Key in a message's metadata (``extra``) listing the suppression scopes that apply to it."""
METADATA_REQUIRED = "mailroom_required"
"""Key in a message's metadata: true for mail the recipient may not turn off."""


def type_scope(notification_type: str) -> str:
    """The scope of one notification type: ``type:<name>``."""
    return f"type:{notification_type}"


def list_scope(name: str) -> str:
    """The scope of one mailing list: ``list:<name>``."""
    return f"list:{name}"


def _check_scope(scope: str) -> str:
    kind, _, name = scope.partition(":")
    if scope == SCOPE_ALL or (kind in ("type", "list") and name and len(scope) <= 200):
        return scope
    raise MessageError("scope", f"{scope!r} is not 'all', 'type:<name>' or 'list:<name>'")


def normalize_address(address: str | Address) -> str:
    """The form an address is stored and compared in: the addr-spec, lower-cased.

    Local parts are case-sensitive in theory (RFC 5321 §2.4) and never in practice; an
    unsubscribe from ``Ada@Example.com`` must also stop mail to ``ada@example.com``.
    """
    return Address.parse(address).addr_spec.lower()


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenClaim:
    """What a valid token says: who, which scope, the app's user key, and when it was made."""

    recipient: str
    scope: str
    key: str | None
    issued_at: datetime


class UnsubscribeTokens:
    """Makes and verifies unsubscribe tokens with ``SECRET_KEY``."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.secret_key("sign unsubscribe links")
        self.max_age = settings.UNSUBSCRIBE_TOKEN_MAX_AGE
        self._serializer = URLSafeTimedSerializer(
            secret, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def make(self, recipient: str | Address, scope: str, key: str | None = None) -> str:
        """A token for ``recipient`` (any address form) and ``scope``."""
        payload: dict[str, str] = {"r": normalize_address(recipient), "s": _check_scope(scope)}
        if key is not None and key != payload["r"]:
            payload["k"] = key
        return self._serializer.dumps(payload)

    def verify(
        self,
        token: str,
        *,
        expected_recipient: str | Address | None = None,
        now: float | None = None,
    ) -> TokenClaim:
        """The claim of a valid token; :class:`InvalidTokenError` for anything else.

        ``expected_recipient``: the token must be for this address (the sender of an
        unsubscribe mail, or the user a page is logged in as).
        """
        try:
            claim = self._verify(token, now)
            if expected_recipient is not None and claim.recipient != normalize_address(
                expected_recipient
            ):
                raise InvalidTokenError
        except (BadData, InvalidTokenError, MessageError, ValueError, TypeError, KeyError) as exc:
            # The reason is logged for operators, the token (which holds an address) is not.
            logger.info("refused an unsubscribe token: %s", type(exc).__name__)
            raise InvalidTokenError from None
        return claim

    def _verify(self, token: str, now: float | None) -> TokenClaim:
        if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
            raise InvalidTokenError
        # Base64 leaves some low bits of a segment's last character unused; two spellings
        # then decode to the same bytes. Only the spelling we issue is accepted, so that
        # changing any character of a token makes it invalid.
        for segment in token.removeprefix(".").split("."):
            data = segment.encode("ascii")
            if base64_encode(base64_decode(data)) != data:
                raise InvalidTokenError
        payload, signed_at = self._serializer.loads(
            token, max_age=int(self.max_age), return_timestamp=True
        )
        if now is not None and now - signed_at.timestamp() > self.max_age:
            raise InvalidTokenError  # an explicit clock (tests, replays) is honoured too
        if not isinstance(payload, dict) or set(payload) - {"r", "s", "k"}:
            raise InvalidTokenError
        return TokenClaim(
            recipient=normalize_address(payload["r"]),
            scope=_check_scope(payload["s"]),
            key=payload.get("k"),
            issued_at=signed_at.astimezone(UTC),
        )


def unsubscribe_url(settings: Settings, token: str) -> str | None:
    """``PUBLIC_BASE_URL/unsubscribe/<token>``, or ``None`` when no public URL is set."""
    if not settings.PUBLIC_BASE_URL:
        return None
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/unsubscribe/{token}"


# -- what the endpoints do ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnsubscribeResult:
    """What :func:`unsubscribe` did, for the confirmation page."""

    recipient: str
    scope: str
    action: ConsentAction


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
    (``one_click``, ``link``, ``mailto``); ``detail`` is kept with the consent record.
    """
    claim = UnsubscribeTokens(settings).verify(
        token, expected_recipient=expected_recipient, now=now
    )
    now = time.time() if now is None else now
    record = {**(detail or {}), "token_issued_at": claim.issued_at.isoformat()}
    with engine.begin() as connection:
        if claim.scope.startswith("type:"):
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
    return UnsubscribeResult(claim.recipient, claim.scope, action)


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
    scope = _check_scope(scope)
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
    scope = _check_scope(scope)
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


# -- checks at enqueue and at delivery ------------------------------------------------------


def suppressed_among(
    connection: Connection,
    recipients: Iterable[str],
    scopes: Iterable[str],
    now: float,
    *,
    required: bool = False,
) -> dict[str, SuppressionReason]:
    """The recipients (as given) suppressed for any of ``scopes`` at ``now``, with the reason.

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
    connection: Connection, message_pks: Sequence[int], now: float
) -> dict[int, dict[str, SuppressionReason]]:
    """For a worker, before delivery: the suppressed recipients of each outbox message.

    Only messages with at least one suppressed recipient appear. The scopes and whether the
    mail is required come from the message's metadata, written by ``notify``; a message sent
    with plain ``mailroom.send`` is treated as required mail checked against ``all`` (the
    caller chose to send it; only bounces, complaints and manual entries stop it). Two
    queries for the whole batch.
    """
    if not message_pks or not q.any_suppressions(connection):
        return {}  # the common case costs one indexed look, not a scan of the batch
    rows = connection.execute(
        select(messages.c.id, messages.c.recipients, messages.c.extra).where(
            messages.c.id.in_(list(message_pks))
        )
    ).all()
    wanted: list[tuple[int, list[str], list[str], bool]] = []
    addresses: set[str] = set()
    scopes: set[str] = {SCOPE_ALL}
    for row in rows:
        extra = row.extra or {}
        message_scopes = [str(s) for s in extra.get(METADATA_SCOPES) or [SCOPE_ALL]]
        required = bool(extra.get(METADATA_REQUIRED, METADATA_SCOPES not in extra))
        wanted.append((row.id, list(row.recipients), message_scopes, required))
        scopes.update(message_scopes)
        for recipient in row.recipients:
            try:
                addresses.add(normalize_address(recipient))
            except MessageError:
                continue
    entries = q.active_suppressions(connection, addresses, scopes, now)
    index: dict[tuple[str, str], SuppressionReason] = {
        (e.address, e.scope): e.reason for e in entries
    }
    result: dict[int, dict[str, SuppressionReason]] = {}
    for message_pk, recipients, message_scopes, required in wanted:
        for recipient in recipients:
            try:
                normalized = normalize_address(recipient)
            except MessageError:
                continue
            for scope in message_scopes:
                reason = index.get((normalized, scope))
                if reason is not None and (not required or reason in BLOCKS_REQUIRED_MAIL):
                    result.setdefault(message_pk, {})[recipient] = reason
                    break
    return result
