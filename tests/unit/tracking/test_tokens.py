"""Open and click tokens: what they say, and that nothing else passes the one verification."""

from __future__ import annotations

import string
import time
from unittest import mock

import pytest
from itsdangerous import BadData

from mailroom.config import Settings, load_settings
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.errors import InvalidTokenError
from mailroom.tracking.tokens import HitClaim, TokenKind, TrackingTokens, verify_public_token

SECRET = "tracking-test-secret-0123456789-abcdefghij"
MESSAGE_ID = "<18a3f0c2d4e5f6a7.0123456789abcdef@acme.example>"


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={}, SECRET_KEY=SECRET)


def test_open_and_click_tokens_say_the_message_recipient_and_link(settings: Settings) -> None:
    tokens = TrackingTokens(settings)
    opened = tokens.open_token(MESSAGE_ID, "Ada@Example.COM")
    clicked = tokens.click_token(MESSAGE_ID, "ada@example.com", 3)
    assert verify_public_token(settings, TokenKind.OPEN, opened) == HitClaim(
        MESSAGE_ID, "ada@example.com", None
    )
    assert verify_public_token(settings, TokenKind.CLICK, clicked) == HitClaim(
        MESSAGE_ID, "ada@example.com", 3
    )
    # URL-safe and compact: one path segment, no padding, well under 200 characters.
    for token in (opened, clicked):
        assert set(token) <= set(string.ascii_letters + string.digits + "-_.")
        assert len(token) < 200


def test_every_single_character_change_is_refused(settings: Settings) -> None:
    token = TrackingTokens(settings).click_token(MESSAGE_ID, "ada@example.com", 0)
    alphabet = string.ascii_letters + string.digits + "-_."
    for position, original in enumerate(token):
        for replacement in {alphabet[(alphabet.index(original) + 1) % len(alphabet)], "A"}:
            if replacement == original:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidTokenError):
                verify_public_token(settings, TokenKind.CLICK, altered)
    for altered in (token[:-1], token + "A", "", "x" * 5000, token.upper()):
        with pytest.raises(InvalidTokenError):
            verify_public_token(settings, TokenKind.CLICK, altered)


def test_a_token_of_one_kind_is_no_token_of_another(settings: Settings) -> None:
    tokens = TrackingTokens(settings)
    opened = tokens.open_token(MESSAGE_ID, "ada@example.com")
    clicked = tokens.click_token(MESSAGE_ID, "ada@example.com", 0)
    unsubscribe = UnsubscribeTokens(settings).make("ada@example.com", "all")
    with pytest.raises(InvalidTokenError):
        verify_public_token(settings, TokenKind.CLICK, opened)
    with pytest.raises(InvalidTokenError):
        verify_public_token(settings, TokenKind.OPEN, clicked)
    with pytest.raises(InvalidTokenError):
        verify_public_token(settings, TokenKind.OPEN, unsubscribe)
    with pytest.raises(InvalidTokenError):
        verify_public_token(settings, TokenKind.UNSUBSCRIBE, clicked)


def test_another_key_or_an_expired_token_is_refused(settings: Settings) -> None:
    token = TrackingTokens(settings).open_token(MESSAGE_ID, "ada@example.com")
    other = load_settings(environ={}, SECRET_KEY=SECRET + "-rotated")
    with pytest.raises(InvalidTokenError):
        verify_public_token(other, TokenKind.OPEN, token)
    later = time.time() + 401 * 24 * 3600
    with mock.patch("time.time", return_value=later), pytest.raises(InvalidTokenError):
        verify_public_token(settings, TokenKind.OPEN, token)


def test_a_link_index_out_of_range_is_never_made(settings: Settings) -> None:
    with pytest.raises(ValueError, match="link index"):
        TrackingTokens(settings).click_token(MESSAGE_ID, "ada@example.com", -1)


def test_a_token_verified_before_is_still_checked_for_its_age_and_kind(settings: Settings) -> None:
    tokens = TrackingTokens(settings)
    token = tokens.open_token(MESSAGE_ID, "ada@example.com")
    claim = tokens.verify(token, TokenKind.OPEN)
    assert tokens.verify(token, TokenKind.OPEN) == claim  # remembered, same answer
    with pytest.raises((BadData, InvalidTokenError)):
        tokens.verify(token, TokenKind.CLICK)
    later = time.time() + 401 * 24 * 3600
    with mock.patch("time.time", return_value=later), pytest.raises(BadData):
        tokens.verify(token, TokenKind.OPEN)  # expired, though verified before
    assert tokens.verify(token, TokenKind.OPEN) == claim
