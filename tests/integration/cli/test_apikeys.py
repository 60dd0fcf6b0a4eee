"""``mailroom apikeys create|list|revoke`` on a real SQLite file and PostgreSQL: a key is
printed once and works; nothing printed afterwards contains it; a revoked key stops working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import Engine, select

from mailroom.access import authenticate
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine
from mailroom.outbox.schema import api_keys
from support.cli_database import CLEAN, engine, run_command

__all__ = ["engine"]  # the fixture, used by name


def run(engine: Engine, *args: str) -> Result:
    return run_command(engine, "apikeys", *args)


def works(engine: Engine, key: str) -> bool:
    with engine.connect() as connection:
        return authenticate(connection, key, 0.0) is not None


def stored_text(engine: Engine) -> str:
    with engine.connect() as connection:
        rows = connection.execute(select(api_keys)).mappings().all()
    return " ".join(str(value) for row in rows for value in row.values())


def test_create_shows_the_key_once_and_list_and_revoke_never_show_it(engine: Engine) -> None:
    created = run(engine, "create", "--name", "Billing service", "--scope", "admin")
    assert created.exit_code == 0, created.output
    (key,) = [word for word in created.stdout.split() if word.startswith("mrk_")]
    assert "will not be shown again" in created.stdout
    assert "Billing service" in created.stdout
    assert works(engine, key)
    assert key not in stored_text(engine)

    listed = run(engine, "list")
    assert listed.exit_code == 0, listed.output
    prefix = key.split("_")[1]
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "PREFIX", "SCOPE"]
    assert "Billing service" in row
    assert prefix in row
    assert "admin" in row
    as_json = run(engine, "list", "--json")
    (entry,) = json.loads(as_json.stdout)["api_keys"]
    assert entry["prefix"] == prefix
    assert entry["scope"] == "admin"
    assert entry["revoked_at"] is None
    assert set(entry) == {
        "id", "name", "prefix", "scope", "created_at", "last_used_at", "revoked_at"
    }  # fmt: skip

    revoked = run(engine, "revoke", prefix)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked API key 1" in revoked.stdout
    assert not works(engine, key)
    again = run(engine, "revoke", "1")
    assert again.exit_code == 0
    assert "already revoked" in again.stdout
    assert json.loads(run(engine, "list", "--json").stdout)["api_keys"][0]["revoked_at"] > 0

    secret = key.split("_", 2)[2]
    for result in (listed, as_json, revoked, again):
        assert secret not in result.output
        assert secret not in result.stderr


def test_quiet_prints_the_key_alone_for_scripts(engine: Engine) -> None:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [sys.executable, "-m", "mailroom", "apikeys", "create", "--name", "cron", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    key = done.stdout.removesuffix("\n")
    assert "\n" not in key
    assert key.startswith("mrk_")
    assert works(engine, key)
    assert json.loads(run(engine, "list", "--json").stdout)["api_keys"][0]["scope"] == "send"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["create", "--name", ""], "Invalid value for '--name': give the key a name"),
        (["create", "--name", "x" * 101], "Invalid value for '--name': at most 100"),
        (["create", "--name", "a\x1bb"], "Invalid value for '--name': only printable"),
        (["create", "--name", "ok", "--scope", "root"], "Invalid value for '--scope'"),
        (["create"], "Missing option '--name'"),
    ],
)
def test_create_refuses_bad_input_naming_the_option(
    engine: Engine, args: list[str], says: str
) -> None:
    result = run(engine, *args)
    assert result.exit_code == 2
    assert says in result.stderr
    assert stored_text(engine) == ""


def test_revoking_an_unknown_key_says_so(engine: Engine) -> None:
    result = run(engine, "revoke", "nosuchprefix")
    assert result.exit_code == 1
    assert "there is no API key with id or prefix nosuchprefix" in result.stderr


def test_an_empty_list_says_how_to_make_a_key(engine: Engine) -> None:
    result = run(engine, "list")
    assert result.exit_code == 0
    assert "mailroom apikeys create --name NAME" in result.stdout


def test_an_old_schema_is_refused(database_url: str, tmp_path: Path) -> None:
    engine = create_outbox_engine(database_url)
    try:
        database.upgrade(engine, "0006")
        result = run(engine, "list")
    finally:
        engine.dispose()
    assert result.exit_code == 1
    assert "mailroom db upgrade" in result.stderr
