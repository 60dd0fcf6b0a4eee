"""Admin accounts on a real database (SQLite and PostgreSQL): made once per name, their
password changed, signed in to, listed without a hash, and the first one made by
``ensure_first_admin`` only when there is none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, select

from mailroom.access import (
    AdminUser,
    AdminUserError,
    check_login,
    create_user,
    end_sessions,
    ensure_first_admin,
    list_users,
    set_password,
    user_by_id,
)
from mailroom.access import admin_users as module
from mailroom.access.passwords import verify_password
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import admin_users

NOW = 1_800_000_000.0
PASSWORD = "a long enough password"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def make(engine: Engine, username: str = "ada", password: str = PASSWORD) -> AdminUser:
    with engine.begin() as connection:
        return create_user(connection, username, password)


def login(engine: Engine, username: str, password: str) -> AdminUser | None:
    return check_login(engine, username, password, NOW)


def test_create_stores_a_hash_not_the_password(engine: Engine) -> None:
    user = make(engine)
    assert user.username == "ada"
    assert user.last_login_at is None
    with engine.connect() as connection:
        stored = connection.execute(select(admin_users.c.password_hash)).scalar_one()
    assert stored.startswith("scrypt$")
    assert PASSWORD not in stored


def test_a_taken_name_is_refused_and_the_first_account_kept(engine: Engine) -> None:
    first = make(engine)
    with pytest.raises(AdminUserError, match="already an account named ada") as caught:
        make(engine, "ada", "another long password")
    assert caught.value.field == "username"
    assert [u.id for u in _listed(engine)] == [first.id]
    assert login(engine, "ada", PASSWORD) is not None


def test_a_refused_name_leaves_the_callers_transaction_usable(engine: Engine) -> None:
    make(engine)
    with engine.begin() as connection:
        with pytest.raises(AdminUserError):
            create_user(connection, "ada", PASSWORD)
        create_user(connection, "grace", PASSWORD)  # same transaction, still fine
    assert [u.username for u in _listed(engine)] == ["ada", "grace"]


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("", PASSWORD, "username"),
        ("has space", PASSWORD, "username"),
        ("x" * 151, PASSWORD, "username"),
        ("ada", "short", "password"),
    ],
)
def test_bad_names_and_short_passwords_are_refused(
    engine: Engine, username: str, password: str, field: str
) -> None:
    with pytest.raises(AdminUserError) as caught:
        make(engine, username, password)
    assert caught.value.field == field
    assert password not in str(caught.value) or field == "username"
    assert _listed(engine) == []


def test_check_login_accepts_the_password_and_records_the_time(engine: Engine) -> None:
    user = make(engine)
    signed_in = login(engine, "ada", PASSWORD)
    assert signed_in is not None
    assert (signed_in.id, signed_in.last_login_at) == (user.id, NOW)
    assert _listed(engine)[0].last_login_at == NOW


def test_wrong_password_and_unknown_user_both_answer_none(engine: Engine) -> None:
    make(engine)
    assert login(engine, "ada", PASSWORD + "x") is None
    assert login(engine, "nobody", PASSWORD) is None
    assert login(engine, "", "") is None
    assert _listed(engine)[0].last_login_at is None


def test_an_unknown_user_costs_a_hash_check_too(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = verify_password

    def counting(password: str, stored: str) -> bool:
        checked.append(stored)
        return real(password, stored)

    monkeypatch.setattr(module, "verify_password", counting)
    assert login(engine, "nobody", PASSWORD) is None
    assert checked == [module._DUMMY_HASH]


def test_a_disabled_account_cannot_sign_in_nor_hold_a_session(engine: Engine) -> None:
    user = make(engine)
    with engine.begin() as connection:
        connection.execute(admin_users.update().values(disabled_at=NOW))
    assert login(engine, "ada", PASSWORD) is None
    with engine.connect() as connection:
        assert user_by_id(connection, user.id) is None


def test_passwd_replaces_the_password(engine: Engine) -> None:
    make(engine)
    with engine.begin() as connection:
        set_password(connection, "ada", "the new long password")
    assert login(engine, "ada", PASSWORD) is None
    assert login(engine, "ada", "the new long password") is not None


def test_passwd_of_an_unknown_user_is_refused(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(AdminUserError, match="no account"):
        set_password(connection, "nobody", PASSWORD)


def test_user_by_id_finds_the_account(engine: Engine) -> None:
    user = make(engine)
    with engine.connect() as connection:
        assert user_by_id(connection, user.id) == user
        assert user_by_id(connection, user.id + 1) is None


def test_the_first_admin_is_made_once_with_the_password_given(engine: Engine) -> None:
    assert ensure_first_admin(engine, "admin", PASSWORD) is None
    assert ensure_first_admin(engine, "admin", "another long password") is None
    assert ensure_first_admin(engine, "root", None) is None
    assert [u.username for u in _listed(engine)] == ["admin"]
    assert login(engine, "admin", PASSWORD) is not None


def test_the_first_admin_gets_a_generated_password_when_none_is_given(engine: Engine) -> None:
    generated = ensure_first_admin(engine, "root", None)
    assert generated is not None
    assert len(generated) >= 20
    assert login(engine, "root", generated) is not None
    assert ensure_first_admin(engine, "root", None) is None


def test_no_first_admin_when_any_account_exists(engine: Engine) -> None:
    make(engine, "ada")
    assert ensure_first_admin(engine, "admin", None) is None
    assert [u.username for u in _listed(engine)] == ["ada"]


def _listed(engine: Engine) -> list[AdminUser]:
    with engine.connect() as connection:
        return list_users(connection)


def test_a_new_password_and_a_sign_out_raise_the_session_epoch(engine: Engine) -> None:
    user = make(engine)
    assert user.session_epoch == 0
    with engine.begin() as connection:
        set_password(connection, "ada", "the new long password")
    with engine.begin() as connection:
        assert _epoch(connection, user.id) == 1
        end_sessions(connection, user.id, 0)  # a stale session's sign-out ends nothing more
        assert _epoch(connection, user.id) == 1
        end_sessions(connection, user.id, 1)
        assert _epoch(connection, user.id) == 2
    signed_in = login(engine, "ada", "the new long password")
    assert signed_in is not None
    assert signed_in.session_epoch == 2


def _epoch(connection: Connection, user_id: int) -> int:
    found = user_by_id(connection, user_id)
    assert found is not None
    return found.session_epoch
