"""Unsubscribe tokens: valid ones round-trip; every altered, expired or misdirected one fails
with one and the same error."""

from __future__ import annotations

import string
import time

import pytest

from mailroom.compose.headers import list_unsubscribe
from mailroom.config import Settings, load_settings
from mailroom.consent.tokens import UnsubscribeTokens, unsubscribe_url
from mailroom.errors import InvalidTokenError, SettingsError

KEY = "unit-test-secret-key-0123456789-abcdefghij"
ALPHABET = string.ascii_letters + string.digits + "-_."


@pytest.fixture
def settings() -> Settings:
    return load_settings(environ={}, SECRET_KEY=KEY, PUBLIC_BASE_URL="https://acme.example")


@pytest.fixture
def tokens(settings: Settings) -> UnsubscribeTokens:
    return UnsubscribeTokens(settings)


def refused(tokens: UnsubscribeTokens, token: str, **kwargs: object) -> str:
    with pytest.raises(InvalidTokenError) as info:
        tokens.verify(token, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


SAME_ERROR = "this link is not valid or has expired"


def test_round_trip(tokens: UnsubscribeTokens) -> None:
    token = tokens.make("Zoë <Zoe@Example.COM>", "type:task.assigned", key="user:7")
    claim = tokens.verify(token)
    assert claim.recipient == "zoe@example.com"
    assert claim.scope == "type:task.assigned"
    assert claim.key == "user:7"
    assert abs(claim.issued_at.timestamp() - time.time()) < 5
    assert set(token) <= set(ALPHABET)
    assert tokens.verify(token, expected_recipient="zoe@example.com").scope == claim.scope


def test_any_changed_byte_is_rejected(tokens: UnsubscribeTokens) -> None:
    token = tokens.make("ada@example.com", "all")
    for position, original in enumerate(token):
        for replacement in ALPHABET:
            if replacement == original:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            assert refused(tokens, altered) == SAME_ERROR, (position, replacement)


def test_truncated_extended_and_garbage_tokens_are_rejected(tokens: UnsubscribeTokens) -> None:
    token = tokens.make("ada@example.com", "all")
    for bad in (token[:-1], token + "A", token[1:], "", ".", "..", "a.b.c", "x" * 5000, token * 2):
        assert refused(tokens, bad) == SAME_ERROR


def test_expired_token_is_rejected(settings: Settings) -> None:
    short = UnsubscribeTokens(settings.model_copy(update={"UNSUBSCRIBE_TOKEN_MAX_AGE": 60.0}))
    token = short.make("ada@example.com", "all")
    assert short.verify(token, now=time.time() + 30).recipient == "ada@example.com"
    assert refused(short, token, now=time.time() + 120) == SAME_ERROR


def test_another_recipients_token_is_rejected(tokens: UnsubscribeTokens) -> None:
    bobs = tokens.make("bob@example.com", "all")
    assert refused(tokens, bobs, expected_recipient="ada@example.com") == SAME_ERROR
    # Bob's payload with Ada's signature: a forgery.
    adas = tokens.make("ada@example.com", "all")
    spliced = bobs.split(".")[0] + "." + ".".join(adas.split(".")[1:])
    assert refused(tokens, spliced) == SAME_ERROR


def test_a_token_signed_with_another_key_is_rejected(settings: Settings) -> None:
    other = UnsubscribeTokens(settings.model_copy(update={"SECRET_KEY": _secret("z" * 40)}))
    assert refused(UnsubscribeTokens(settings), other.make("ada@example.com", "all")) == SAME_ERROR


def test_bad_scope_is_refused_when_making() -> None:
    tokens = UnsubscribeTokens(load_settings(environ={}, SECRET_KEY=KEY))
    with pytest.raises(ValueError, match="scope"):
        tokens.make("ada@example.com", "everything")


def test_missing_secret_key_names_the_setting() -> None:
    with pytest.raises(SettingsError) as info:
        UnsubscribeTokens(load_settings(environ={}))
    assert info.value.setting == "SECRET_KEY"


def test_url_and_headers(settings: Settings, tokens: UnsubscribeTokens) -> None:
    token = tokens.make("ada@example.com", "all")
    url = unsubscribe_url(settings, token)
    assert url == f"https://acme.example/unsubscribe/{token}"
    assert list_unsubscribe(settings, token) == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert unsubscribe_url(load_settings(environ={}, SECRET_KEY=KEY), token) is None
    with pytest.raises(ValueError, match="https"):
        # Settings refuse such a PUBLIC_BASE_URL; the header refuses it on its own too.
        list_unsubscribe(
            settings.model_copy(update={"PUBLIC_BASE_URL": "http://acme.example"}), token
        )


def _secret(value: str) -> object:
    from pydantic import SecretStr  # noqa: PLC0415

    return SecretStr(value)
