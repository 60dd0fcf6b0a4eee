"""Mailroom in a database it shares with an application (which may use Alembic too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, inspect, text

from mailroom.cli import main
from mailroom.config import SETTING_NAMES, load_settings
from mailroom.errors import DatabaseFileError, SchemaOutdatedError
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.database import (
    LEGACY_VERSION_TABLE,
    VERSION_TABLE,
    create_outbox_engine,
)
from mailroom.outbox.store import Outbox

APP_REVISION = "abc123"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_outbox_engine(database_url)
    yield engine
    engine.dispose()


def add_application_tables(engine: Engine, *, alembic: bool, revision: str = APP_REVISION) -> None:
    """What an application of its own leaves in the database: a table, and perhaps Alembic's
    version table holding a revision of the application's."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE app_users (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(text("INSERT INTO app_users (id, name) VALUES (1, 'ada')"))
        if alembic:
            connection.execute(
                text(
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                )
            )
            connection.execute(text("INSERT INTO alembic_version VALUES (:rev)"), {"rev": revision})


def tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def versions(engine: Engine, table: str) -> list[str]:
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {table}"))]  # noqa: S608


def note() -> Message:
    return Message(to=["ada@example.com"], subject="Hi", text="hello")


def cli(env: dict[str, str], *args: str) -> Result:
    clean: dict[str, str | None] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    return CliRunner().invoke(main, list(args), env={**clean, **env}, catch_exceptions=False)


def test_upgrade_beside_an_applications_alembic_leaves_its_version_alone(
    engine: Engine, database_url: str
) -> None:
    add_application_tables(engine, alembic=True)

    first = cli({"DATABASE_URL": database_url}, "db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "created the Mailroom tables" in first.output

    head = database.schema_revisions(engine)[1]
    assert versions(engine, VERSION_TABLE) == [head]
    assert versions(engine, LEGACY_VERSION_TABLE) == [APP_REVISION]
    assert "app_users" in tables(engine)
    database.check_schema(engine)

    again = cli({"DATABASE_URL": database_url}, "db", "upgrade")
    assert again.exit_code == 0, again.output
    assert f"already at schema revision {head}; nothing to do" in again.output
    assert versions(engine, LEGACY_VERSION_TABLE) == [APP_REVISION]


def test_an_application_revision_named_like_ours_is_not_taken(engine: Engine) -> None:
    """An application whose own migrations are numbered "0001", "0002" ... as ours are."""
    add_application_tables(engine, alembic=True, revision="0001")
    before, after = database.upgrade(engine)
    assert before is None
    assert after == database.schema_revisions(engine)[1]
    assert versions(engine, LEGACY_VERSION_TABLE) == ["0001"]


def test_db_upgrade_says_what_it_changed(engine: Engine, database_url: str) -> None:
    database.upgrade(engine, "0003")
    result = cli({"DATABASE_URL": database_url}, "db", "upgrade")
    assert result.exit_code == 0, result.output
    head = database.schema_revisions(engine)[1]
    assert f"from schema revision 0003 to {head}" in result.output
    assert "upgraded" in result.output


@pytest.mark.parametrize("alembic", [False, True])
def test_first_send_creates_nothing_in_a_database_holding_other_tables(
    engine: Engine, database_url: str, alembic: bool
) -> None:
    add_application_tables(engine, alembic=alembic)
    before = tables(engine)
    outbox = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    try:
        with pytest.raises(SchemaOutdatedError, match="has no Mailroom tables") as raised:
            outbox.send(note())
    finally:
        outbox.dispose()
    assert "mailroom db upgrade" in str(raised.value)
    assert "DATABASE_URL" in str(raised.value)
    assert tables(engine) == before


def test_first_send_creates_tables_only_in_an_empty_sqlite_file(
    engine: Engine, database_url: str
) -> None:
    """A new SQLite file is Mailroom's own; an empty PostgreSQL database is not."""
    outbox = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    try:
        if engine.dialect.name == "sqlite":
            assert outbox.send(note()) > 0
            assert LEGACY_VERSION_TABLE not in tables(engine)
            assert versions(engine, VERSION_TABLE) == [database.schema_revisions(engine)[1]]
            return
        with pytest.raises(SchemaOutdatedError, match="mailroom db upgrade"):
            outbox.send(note())
        assert tables(engine) == set()
    finally:
        outbox.dispose()


def test_mailroom_send_cli_on_an_unmigrated_postgresql_says_what_to_run(
    engine: Engine, database_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a new SQLite file is created on first use, on purpose")
    result = cli({"DATABASE_URL": database_url}, "send", "--to", "a@example.com", "--subject", "x")
    assert result.exit_code == 1
    assert "mailroom db upgrade" in result.output
    assert tables(engine) == set()


def make_old_install(engine: Engine) -> str:
    """A database as an older Mailroom left it: its revision in ``alembic_version``."""
    database.upgrade(engine)
    head = database.schema_revisions(engine)[1]
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        connection.execute(
            text(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
            )
        )
        connection.execute(text("INSERT INTO alembic_version VALUES (:rev)"), {"rev": head})
    return head


def test_an_old_install_moves_its_revision_on_upgrade(engine: Engine, database_url: str) -> None:
    head = make_old_install(engine)
    database.check_schema(engine)  # read as before, without writing

    result = cli({"DATABASE_URL": database_url}, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "already at schema revision" in result.output
    assert versions(engine, VERSION_TABLE) == [head]
    assert LEGACY_VERSION_TABLE not in tables(engine)


def test_an_old_install_moves_its_revision_on_first_send(engine: Engine, database_url: str) -> None:
    head = make_old_install(engine)
    outbox = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    try:
        assert outbox.send(note()) > 0
    finally:
        outbox.dispose()
    assert versions(engine, VERSION_TABLE) == [head]
    assert LEGACY_VERSION_TABLE not in tables(engine)


# Every command of `mailroom --help` that only reads the outbox or changes rows already in it
# (send and db upgrade create it, on purpose).
@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["queue", "list"],
        ["queue", "show", "1"],
        ["queue", "retry", "1"],
        ["queue", "cancel", "1"],
        ["queue", "purge", "--older-than", "1d"],
        ["streams", "list"],
        ["streams", "resume", "transactional"],
        ["worker", "--once"],
    ],
    ids=" ".join,
)
def test_a_read_only_command_in_the_wrong_folder_leaves_no_outbox_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli({}, *command)
    assert result.exit_code == 1
    assert f"no outbox at {tmp_path / 'mailroom.db'}" in result.output
    assert "DATABASE_URL" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_library_raises_the_missing_outbox_for_a_reader(tmp_path: Path) -> None:
    with pytest.raises(DatabaseFileError, match="no outbox at /"):
        create_outbox_engine(f"sqlite:///{tmp_path / 'missing.db'}", must_exist=True)
    assert list(tmp_path.iterdir()) == []
