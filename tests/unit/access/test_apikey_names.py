"""What an API key may be called, and what its public form holds (never a secret)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from mailroom.access import ApiKey, ApiKeyError
from mailroom.access.apikeys import NAME_MAX, check_name
from mailroom.outbox.vocabulary import ApiKeyScope


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("ci", "ci"),
        ("  deploy bot  ", "deploy bot"),
        ("Zoë's app", "Zoë's app"),
        ("x" * 100, "x" * 100),
    ],
)
def test_names_kept(given: str, kept: str) -> None:
    assert check_name(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("", "give the key a name"),
        ("   ", "give the key a name"),
        ("x" * (NAME_MAX + 1), f"at most {NAME_MAX} characters"),
        ("a\nb", "printable"),
        ("a\x1b[2Jb", "printable"),
        ("a\u202eb", "printable"),
    ],
)
def test_names_refused_naming_the_field(given: str, says: str) -> None:
    with pytest.raises(ApiKeyError, match=says) as caught:
        check_name(given)
    assert caught.value.field == "name"
    assert str(caught.value).startswith("name: ")


def test_the_public_form_of_a_key_has_no_secret_and_no_digest() -> None:
    names = {field.name for field in fields(ApiKey)}
    assert names == {"id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"}
    key = ApiKey(1, "ci", "AbCdEfGh1234", ApiKeyScope.SEND, 1.0, None, None)
    assert not key.revoked
    assert "AbCdEfGh1234" in repr(key)
    with pytest.raises(AttributeError):
        key.name = "other"  # type: ignore[misc]
