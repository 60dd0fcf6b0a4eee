"""Signed unsubscribe tokens.

An unsubscribe link carries a token: the recipient's address, an optional app user key, the
scope (see :mod:`mailroom.consent.scopes`) and the issue time, signed with HMAC-SHA256 under
``SECRET_KEY`` (itsdangerous, which compares signatures in constant time). It needs no login,
cannot be forged or altered (every byte is covered by the signature, and a non-canonical
base64 spelling is refused too) and cannot be enumerated (nothing in it is sequential or
guessable). Every failure — altered, expired, another recipient's, not a token at all — raises
the same :class:`~mailroom.errors.InvalidTokenError`, so an attacker learns nothing from the
answer. The payload is signed, not encrypted: the address in it is visible to whoever holds the
link, which is the recipient.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from mailroom.config import Settings
from mailroom.consent.scopes import check_scope, normalize_address
from mailroom.errors import InvalidTokenError, MessageError
from mailroom.message import Address

__all__ = ["TokenClaim", "UnsubscribeTokens", "require_canonical", "unsubscribe_url"]

logger = logging.getLogger(__name__)

# The salt predates this module's name; changing it would invalidate every link sent.
_SALT = "mailroom.unsubscribe.v1"
_MAX_TOKEN_CHARS = 2000  # far above any real token; refuse before any decoding work


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
        payload: dict[str, str] = {"r": normalize_address(recipient), "s": check_scope(scope)}
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
        require_canonical(token)
        payload, signed_at = self._serializer.loads(
            token, max_age=int(self.max_age), return_timestamp=True
        )
        if now is not None and now - signed_at.timestamp() > self.max_age:
            raise InvalidTokenError  # an explicit clock (tests, replays) is honoured too
        if not isinstance(payload, dict) or set(payload) - {"r", "s", "k"}:
            raise InvalidTokenError
        return TokenClaim(
            recipient=normalize_address(payload["r"]),
            scope=check_scope(payload["s"]),
            key=payload.get("k"),
            issued_at=signed_at.astimezone(UTC),
        )


def require_canonical(token: object) -> None:
    """Refuse (:class:`InvalidTokenError`) anything but a token spelled as we issue them.

    Base64 leaves some low bits of a segment's last character unused; two spellings then
    decode to the same bytes. Only the spelling we issue is accepted, so that changing any
    character of a token makes it invalid. Every signed public token goes through here.
    """
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
        raise InvalidTokenError
    try:
        for segment in token.removeprefix(".").split("."):
            data = segment.encode("ascii")
            if base64_encode(base64_decode(data)) != data:
                raise InvalidTokenError
    except (BadData, UnicodeError, ValueError):
        raise InvalidTokenError from None


def unsubscribe_url(settings: Settings, token: str) -> str | None:
    """``PUBLIC_BASE_URL/unsubscribe/<token>``, or ``None`` when no public URL is set."""
    if not settings.PUBLIC_BASE_URL:
        return None
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/unsubscribe/{token}"
