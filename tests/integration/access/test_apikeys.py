"""API keys on a real database (SQLite and PostgreSQL): made and shown once, stored only as a
digest, accepted exactly as issued, refused once revoked, touched at most once a minute."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine, select

from mailroom.access import (
    ApiKey,
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    touch_api_key,
)
from mailroom.access.apikeys import TOUCH_INTERVAL
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import api_keys
from mailroom.outbox.vocabulary import ApiKeyScope

NOW = 1_800_000_000.0
KEY_CHARS = string.ascii_letters + string.digits + "-_"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def make(
    engine: Engine, name: str = "ci", scope: ApiKeyScope = ApiKeyScope.SEND
) -> tuple[ApiKey, str]:
    with engine.begin() as connection:
        return create_api_key(connection, name=name, scope=scope, now=NOW)


def check(engine: Engine, presented: str, now: float = NOW + 1) -> ApiKey | None:
    with engine.connect() as connection:
        return authenticate(connection, presented, now)


def test_a_new_key_authenticates_and_is_stored_only_as_a_digest(engine: Engine) -> None:
    key, plaintext = make(engine, "deploy bot", ApiKeyScope.ADMIN)
    _, prefix, secret = plaintext.split("_", 2)
    assert plaintext.startswith("mrk_")
    assert prefix == key.prefix
    assert len(secret) == 43
    assert (key.name, key.scope, key.created_at) == ("deploy bot", ApiKeyScope.ADMIN, NOW)
    assert key.last_used_at is None
    assert key.revoked_at is None
    assert check(engine, plaintext) == key

    with engine.connect() as connection:
        (row,) = connection.execute(select(api_keys)).mappings().all()
    stored = " ".join(str(value) for value in row.values())
    assert plaintext not in stored
    assert secret not in stored
    assert len(row["key_hash"]) == 64
    assert all(c in "0123456789abcdef" for c in row["key_hash"])
    # Nothing shown of a key reveals its secret.
    assert secret not in repr(key)
    assert secret not in repr(list_api_keys_of(engine))


def list_api_keys_of(engine: Engine) -> list[ApiKey]:
    with engine.connect() as connection:
        return list_api_keys(connection)


def test_every_single_character_change_is_refused(engine: Engine) -> None:
    _, plaintext = make(engine)
    for index in range(len(plaintext)):
        for replacement in ("A", "z", "0", "_"):
            if plaintext[index] == replacement:
                continue
            changed = plaintext[:index] + replacement + plaintext[index + 1 :]
            assert check(engine, changed) is None, (index, replacement)
    assert check(engine, plaintext) is not None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "mrk_",
        "Bearer mrk_x",
        "mrk_abcdefghijkl_",
        "mrk_abcdefghijkl_" + "A" * 43,  # well formed, unknown prefix
        "mrk_abc_" + "A" * 43,
        "x" * 100_000,
        "mrk_abcdefghijkl_" + "é" * 43,
        "mrk_abcdefghijkl_" + "A" * 43 + "\n",
    ],
)
def test_malformed_and_unknown_keys_are_refused(engine: Engine, presented: str) -> None:
    make(engine)
    assert check(engine, presented) is None


def test_the_wrong_secret_for_a_real_prefix_is_refused(engine: Engine) -> None:
    key, _plaintext = make(engine)
    _, other = make(engine, "other")
    forged = f"mrk_{key.prefix}_{other.split('_', 2)[2]}"
    assert check(engine, forged) is None


def test_a_revoked_key_is_refused_and_revoking_again_changes_nothing(engine: Engine) -> None:
    key, plaintext = make(engine)
    _, kept = make(engine, "kept")
    with engine.begin() as connection:
        revoked = revoke_api_key(connection, key.prefix, NOW + 10)
    assert revoked is not None
    assert revoked.revoked_at == NOW + 10
    assert check(engine, plaintext) is None
    assert check(engine, kept) is not None  # the other key is untouched
    with engine.begin() as connection:
        again = revoke_api_key(connection, str(key.id), NOW + 20)
    assert again is not None
    assert again.revoked_at == NOW + 10
    assert [k.revoked_at for k in list_api_keys_of(engine)] == [NOW + 10, None]


def test_revoke_finds_a_key_by_id_prefix_or_whole_key_and_nothing_else(engine: Engine) -> None:
    first, _ = make(engine, "one")
    second, plaintext = make(engine, "two")
    with engine.begin() as connection:
        assert revoke_api_key(connection, "999", NOW) is None
        assert revoke_api_key(connection, "nope", NOW) is None
        assert revoke_api_key(connection, "", NOW) is None
        by_key = revoke_api_key(connection, plaintext, NOW)
        by_id = revoke_api_key(connection, f" {first.id} ", NOW)
    assert by_key is not None
    assert by_key.id == second.id
    assert by_id is not None
    assert by_id.id == first.id


def test_touch_writes_last_used_at_most_once_a_minute(engine: Engine) -> None:
    _, plaintext = make(engine)
    used = NOW + 100
    with engine.begin() as connection:
        key = authenticate(connection, plaintext, used)
        assert key is not None
        assert touch_api_key(connection, key, used) is True
    with engine.begin() as connection:
        key = authenticate(connection, plaintext, used + 30)
        assert key is not None
        assert key.last_used_at == used
        assert touch_api_key(connection, key, used + 30) is False  # within the minute
        # A stale copy of the key (another request raced this one) still writes nothing.
        stale = replace(key, last_used_at=None)
        assert touch_api_key(connection, stale, used + 30) is False
    later = used + TOUCH_INTERVAL + 1
    with engine.begin() as connection:
        key = authenticate(connection, plaintext, later)
        assert key is not None
        assert touch_api_key(connection, key, later) is True
    assert list_api_keys_of(engine)[0].last_used_at == later


def test_authenticate_writes_nothing(engine: Engine) -> None:
    _, plaintext = make(engine)
    for _ in range(3):
        assert check(engine, plaintext) is not None
    assert list_api_keys_of(engine)[0].last_used_at is None


def test_list_shows_every_key_oldest_first(engine: Engine) -> None:
    names = ["a", "b", "c"]
    made = [make(engine, name)[0] for name in names]
    assert list_api_keys_of(engine) == made
    assert len({key.prefix for key in made}) == 3
