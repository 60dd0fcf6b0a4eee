"""Signed tokens of the public endpoints, and the one function that verifies them all.

An open token names a message (its ``Message-ID``) and one recipient; a click token adds the
index of the link in that message's ``tracked_links``. Both are HMAC-SHA256-signed with
``SECRET_KEY`` by itsdangerous under salts of their own (an open token is no click token, and
neither is an unsubscribe token), carry their issue time, and hold the fewest characters
that say this: the Message-ID without its angle brackets, the address, the index, as a
compact JSON list that itsdangerous compresses when that is shorter. They are URL-safe
base64 with dots, so they fit a path segment as they are.

:func:`verify_public_token` is what every public endpoint calls — unsubscribe, preferences,
the pixel and the click redirect. Every failure, whatever its cause (not a token, altered in
any one character, expired, of the wrong kind, signed with another key), raises the same
:class:`~mailroom.errors.InvalidTokenError`, so every endpoint answers every bad token alike.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, overload

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from mailroom.config import Settings
from mailroom.consent.scopes import normalize_address
from mailroom.consent.tokens import TokenClaim, UnsubscribeTokens, require_canonical
from mailroom.errors import InvalidTokenError, MessageError

__all__ = [
    "TRACKING_TOKEN_MAX_AGE",
    "HitClaim",
    "TokenKind",
    "TrackingTokens",
    "verify_public_token",
]

logger = logging.getLogger(__name__)

TRACKING_TOKEN_MAX_AGE = 400 * 24 * 3600.0
"""How long an open or click token is honoured: a little over a year, as people find old mail
and click it. An expired click token answers the same 404 as a forged one."""

_VERIFIED_MAX = 10_000  # valid tokens remembered (a few MB); all forgotten when full
_MAX_LINK_INDEX = 10_000  # more links than any message has; refuse a larger index outright


class TokenKind(StrEnum):
    """What a public token is for. An unsubscribe token also opens the preference centre."""

    UNSUBSCRIBE = "unsubscribe"
    OPEN = "open"
    CLICK = "click"


_SALTS = {TokenKind.OPEN: "mailroom.track.open.v1", TokenKind.CLICK: "mailroom.track.click.v1"}


@dataclass(frozen=True, slots=True)
class HitClaim:
    """What a valid open or click token says."""

    message_id: str
    """The ``Message-ID`` header, with its angle brackets."""
    recipient: str
    """The normalised address the message was composed for."""
    link_index: int | None = None
    """For a click: the index into the message's ``tracked_links``."""


class TrackingTokens:
    """Makes and verifies open and click tokens with ``SECRET_KEY``."""

    def __init__(self, settings: Settings, *, max_age: float = TRACKING_TOKEN_MAX_AGE) -> None:
        secret = settings.secret_key("sign open and click tracking links")
        self.max_age = max_age
        self._serializers = {
            kind: URLSafeTimedSerializer(
                secret, salt=salt, signer_kwargs={"digest_method": hashlib.sha256}
            )
            for kind, salt in _SALTS.items()
        }
        # What ``loads`` would make afresh for every token (a signer, its derived key), made
        # once: the pixel verifies thousands of tokens a second with the same key.
        self._signers = {
            kind: _KeyedSigner(secret, salt=salt, digest_method=hashlib.sha256)
            for kind, salt in _SALTS.items()
        }
        self._verified: dict[tuple[TokenKind, str], tuple[HitClaim, float]] = {}

    def open_token(self, message_id: str, recipient: str) -> str:
        """The token of the pixel of ``message_id`` for ``recipient``."""
        payload = [_bare(message_id), normalize_address(recipient)]
        return str(self._serializers[TokenKind.OPEN].dumps(payload))

    def click_token(self, message_id: str, recipient: str, link_index: int) -> str:
        """The token of link ``link_index`` of ``message_id`` for ``recipient``."""
        if not 0 <= link_index < _MAX_LINK_INDEX:
            raise ValueError(f"link index {link_index} out of range")
        payload = [_bare(message_id), normalize_address(recipient), link_index]
        return str(self._serializers[TokenKind.CLICK].dumps(payload))

    def verify(self, token: str, kind: Literal[TokenKind.OPEN, TokenKind.CLICK]) -> HitClaim:
        """The claim of a valid ``kind`` token; :class:`InvalidTokenError` for anything else.

        A token found valid is remembered with its issue time (the same string under the same
        key verifies the same way every time; only its age changes, and that is checked
        again): a pixel fetched again, by its reader and by the mail provider's proxy, or a
        link followed twice, costs no second HMAC.
        """
        known = self._verified.get((kind, token))
        if known is not None:
            claim, issued = known
            if 0 <= time.time() - issued <= int(self.max_age):
                return claim
            self._verified.pop((kind, token), None)
        claim, issued = self._verify(token, kind)
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[(kind, token)] = (claim, issued)
        return claim

    def _verify(self, token: str, kind: TokenKind) -> tuple[HitClaim, float]:
        require_canonical(token)
        # ``URLSafeTimedSerializer.loads``, with the signer made once.
        signed, issued = self._signers[kind].unsign(
            token, max_age=int(self.max_age), return_timestamp=True
        )
        payload = self._serializers[kind].load_payload(signed)
        size = 3 if kind is TokenKind.CLICK else 2
        if not isinstance(payload, list) or len(payload) != size:
            raise InvalidTokenError
        bare, recipient = payload[0], payload[1]
        if not isinstance(bare, str) or not isinstance(recipient, str) or not bare:
            raise InvalidTokenError
        index = None
        if kind is TokenKind.CLICK:
            index = payload[2]
            if type(index) is not int or not 0 <= index < _MAX_LINK_INDEX:
                raise InvalidTokenError
        return HitClaim(f"<{bare}>", normalize_address(recipient), index), issued.timestamp()


class _KeyedSigner(TimestampSigner):
    """A timestamp signer that derives its key from the secret and salt once, not per call."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        derived: dict[str | bytes | None, bytes] = self.__dict__.setdefault("_derived", {})
        key = derived.get(secret_key)
        if key is None:
            key = derived[secret_key] = super().derive_key(secret_key)
        return key


_CACHE: dict[str, TrackingTokens] = {}
_CACHE_MAX = 4  # one key in practice; a few while a key is rotated


def _tokens_for(settings: Settings) -> TrackingTokens:
    """The verifier for ``settings``' key, made once: the pixel verifies thousands a second."""
    secret = settings.secret_key("verify open and click tracking links")
    tokens = _CACHE.get(secret)
    if tokens is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        tokens = _CACHE[secret] = TrackingTokens(settings)
    return tokens


def _bare(message_id: str) -> str:
    """``<x@y>`` → ``x@y``: the brackets are the same on every Message-ID."""
    return message_id.strip().removeprefix("<").removesuffix(">")


@overload
def verify_public_token(
    settings: Settings, kind: Literal[TokenKind.UNSUBSCRIBE], token: str
) -> TokenClaim: ...
@overload
def verify_public_token(
    settings: Settings, kind: Literal[TokenKind.OPEN, TokenKind.CLICK], token: str
) -> HitClaim: ...
def verify_public_token(settings: Settings, kind: TokenKind, token: str) -> TokenClaim | HitClaim:
    """Verify a token of a public endpoint: the one check all of them make.

    Returns what it says; raises :class:`InvalidTokenError` — and only that — for a token
    that is not valid for ``kind`` for any reason. The reason is logged for operators (the
    token, which names an address, is not).
    """
    try:
        if kind is TokenKind.UNSUBSCRIBE:
            return UnsubscribeTokens(settings).verify(token)
        return _tokens_for(settings).verify(token, kind)
    except InvalidTokenError:
        raise
    except (BadData, MessageError, ValueError, TypeError, KeyError, IndexError) as exc:
        logger.info("refused a %s token: %s", kind.value, type(exc).__name__)
        raise InvalidTokenError from None
