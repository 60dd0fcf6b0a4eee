"""A migrated outbox database for the ``mailroom`` commands' tests, and a way to run one of
the commands against it in-process, with no setting from the machine's environment or a
``mailroom.toml`` leaking in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from mailroom.cli import main
from mailroom.config import SETTING_NAMES
from mailroom.outbox import database
from mailroom.outbox.database import create_outbox_engine

CLEAN = (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
"""Every variable a command would read settings from: cleared for each run."""


@pytest.fixture
def engine(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The ``database_url`` database, migrated; the test runs in its own empty folder."""
    monkeypatch.chdir(tmp_path)  # no mailroom.toml from the working directory
    engine = create_outbox_engine(database_url)
    database.upgrade(engine)
    yield engine
    engine.dispose()


def run_command(engine: Engine, *args: str) -> Result:
    """``mailroom ARGS...`` on ``engine``'s database."""
    env: dict[str, str | None] = dict.fromkeys(CLEAN)
    env["DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
