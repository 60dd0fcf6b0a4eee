"""Open and click tracking: signed tokens (:mod:`.tokens`, with the one verification every
public endpoint uses), who made a hit (:mod:`.labels`), the outbox rows a token names
(:mod:`.queries`) and the batched writer of hits (:mod:`.recorder`). The links and the pixel
are put into messages at composition (:mod:`mailroom.compose.tracking`); the endpoints are
:mod:`mailroom.web.public`."""

from __future__ import annotations

from mailroom.tracking.labels import SCANNER_CLICK_SECONDS, HitKind, keep_ip, label_hit
from mailroom.tracking.recorder import EventRecorder, Hit
from mailroom.tracking.tokens import HitClaim, TokenKind, TrackingTokens, verify_public_token

__all__ = [
    "SCANNER_CLICK_SECONDS",
    "EventRecorder",
    "Hit",
    "HitClaim",
    "HitKind",
    "TokenKind",
    "TrackingTokens",
    "keep_ip",
    "label_hit",
    "verify_public_token",
]
