"""``mailroom users create|passwd|list`` on a real SQLite file and PostgreSQL: the password
comes from a prompt asked twice or from standard input, never from an argument, and is never
printed; the account it makes can sign in."""

from __future__ import annotations

import json

from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from mailroom.access import check_login
from mailroom.cli import main
from mailroom.outbox.schema import admin_users
from support.cli_database import CLEAN, engine, run_command

__all__ = ["engine"]  # the fixture, used by name

PASSWORD = "a long enough password"


def run(engine: Engine, *args: str, stdin: str | None = None) -> Result:
    """``mailroom users ARGS...`` on ``engine``'s database, with ``stdin`` as its input."""
    env: dict[str, str | None] = dict.fromkeys(CLEAN)
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, ["users", *args], env=env, input=stdin, catch_exceptions=False)


def signs_in(engine: Engine, username: str, password: str) -> bool:
    return check_login(engine, username, password, 0.0) is not None


def test_create_from_stdin_makes_an_account_that_signs_in(engine: Engine) -> None:
    result = run(engine, "create", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created admin account 1 “ada”" in result.output
    assert PASSWORD not in result.output
    assert signs_in(engine, "ada", PASSWORD)


def test_create_asks_twice_without_echo(engine: Engine) -> None:
    result = run(engine, "create", "ada", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1
    assert "Repeat for confirmation" in result.output
    assert PASSWORD not in result.output
    assert signs_in(engine, "ada", PASSWORD)


def test_create_refuses_two_different_answers(engine: Engine) -> None:
    result = run(engine, "create", "ada", stdin=f"{PASSWORD}\nsomething else\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    assert _names(engine) == []


def test_create_refuses_a_taken_name(engine: Engine) -> None:
    run(engine, "create", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    result = run(engine, "create", "ada", "--password-stdin", stdin="another long one\n")
    assert result.exit_code == 1
    assert "already an account named ada" in result.output
    assert signs_in(engine, "ada", PASSWORD)


def test_create_refuses_a_short_password_and_a_bad_name(engine: Engine) -> None:
    short = run(engine, "create", "ada", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "the password is refused: at least 8 characters" in short.output
    assert "short\n" not in short.output.replace("refused: at least", "")
    bad = run(engine, "create", "two words", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad.exit_code == 2
    assert "only letters, digits" in bad.output
    assert _names(engine) == []


def test_passwd_changes_the_password(engine: Engine) -> None:
    run(engine, "create", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    result = run(engine, "passwd", "ada", "--password-stdin", stdin="the new long password\n")
    assert result.exit_code == 0, result.output
    assert "changed the password of “ada”" in result.output
    assert not signs_in(engine, "ada", PASSWORD)
    assert signs_in(engine, "ada", "the new long password")


def test_passwd_of_an_unknown_user_fails(engine: Engine) -> None:
    result = run(engine, "passwd", "nobody", "--password-stdin", stdin=PASSWORD + "\n")
    assert result.exit_code == 1
    assert "there is no account named nobody" in result.output


def test_list_shows_accounts_and_never_a_hash(engine: Engine) -> None:
    assert "no admin accounts" in run_command(engine, "users", "list").output
    run(engine, "create", "ada", "--password-stdin", stdin=PASSWORD + "\n")
    run(engine, "create", "grace", "--password-stdin", stdin=PASSWORD + "\n")
    assert signs_in(engine, "grace", PASSWORD)
    table = run_command(engine, "users", "list").output.splitlines()
    assert table[0].split() == ["ID", "USERNAME", "CREATED", "(UTC)", "LAST", "SIGN-IN", "(UTC)"]
    assert table[1].split()[:2] == ["1", "ada"]
    assert table[1].split()[-1] == "-"  # never signed in
    assert table[2].split()[:2] == ["2", "grace"]
    assert table[2].split()[-1] != "-"  # signed in just now
    listed = json.loads(run(engine, "list", "--json").output)["users"]
    assert [u["username"] for u in listed] == ["ada", "grace"]
    assert set(listed[0]) == {"id", "username", "created_at", "last_login_at"}
    with engine.connect() as connection:
        hashes = connection.execute(select(admin_users.c.password_hash)).scalars().all()
    everything = run(engine, "list").output + run(engine, "list", "--json").output
    assert all(h not in everything and h.split("$")[5] not in everything for h in hashes)


def _names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(admin_users.c.username)).scalars())
