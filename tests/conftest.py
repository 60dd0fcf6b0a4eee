"""Shared fixtures: a real aiosmtpd server on loopback, real TLS certificates from trustme."""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from mailroom.config import load_settings
from mailroom.outbox import database
from mailroom.outbox.database import normalise_url
from mailroom.outbox.store import Outbox
from support.processes import Spawn
from support.smtp_server import TEST_PASSWORD, ScriptedHandler, ServerFactory, SMTPTestServer
from support.tls_files import TLSFiles


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return TLSFiles(ca, ca_path, context)


@pytest.fixture
def smtp_server_factory(tls: TLSFiles) -> Iterator[ServerFactory]:
    """Start scripted servers: ``factory(mode="plain"|"starttls"|"implicit", auth=..., ...)``."""
    started: list[SMTPTestServer] = []

    def start(
        mode: str = "plain",
        *,
        auth: bool = False,
        handler: ScriptedHandler | None = None,
        **smtp_kwargs: Any,
    ) -> SMTPTestServer:
        handler = handler or ScriptedHandler()
        kwargs: dict[str, Any] = dict(smtp_kwargs)
        if mode == "starttls":
            kwargs["tls_context"] = tls.server_context
        if auth:
            kwargs["authenticator"] = handler.authenticate
            kwargs.setdefault("auth_require_tls", mode != "plain")
        server = SMTPTestServer(
            handler, implicit_tls=tls.server_context if mode == "implicit" else None, **kwargs
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: ServerFactory) -> SMTPTestServer:
    """A plain SMTP server that accepts everything."""
    return smtp_server_factory()


@pytest.fixture(autouse=True)
def _no_password_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log line any test produces, at every level, is checked for the test password."""
    caplog.set_level(logging.DEBUG)
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        assert TEST_PASSWORD not in text, f"password leaked in log record {record.name}"


# -- databases: every outbox test runs on SQLite and on a real PostgreSQL ------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "MAILROOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_postgres_skipped: list[str] = []


def _postgres_admin() -> Engine | None:
    engine = create_engine(
        normalise_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT", pool_pre_ping=True
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except OperationalError as exc:
        engine.dispose()
        _postgres_skipped.append(str(exc).splitlines()[0])
        return None
    return engine


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine | None]:
    engine = _postgres_admin()
    yield engine
    if engine is not None:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: Engine | None
) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a new PostgreSQL database."""
    yield from _fresh_database(request.param, tmp_path, postgres_admin)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_admin: Engine | None,
) -> Iterator[str]:
    """:func:`database_url` shared by a module's tests (one service process each)."""
    yield from _fresh_database(request.param, tmp_path_factory.mktemp("db"), postgres_admin)


def _fresh_database(kind: str, tmp_path: Path, postgres_admin: Engine | None) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.db'}"
        return
    if postgres_admin is None:
        if os.environ.get("MAILROOM_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here but not reachable: {_postgres_skipped[0]}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    name = f"mailroom_test_{secrets.token_hex(6)}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(normalise_url(POSTGRES_ADMIN_URL)).set(database=name)
    yield url.render_as_string(hide_password=False)
    with postgres_admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the PostgreSQL half of the suite did not run."""
    if _postgres_skipped:
        terminalreporter.write_sep("!", "PostgreSQL tests were SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"could not connect to {POSTGRES_ADMIN_URL}:")
        terminalreporter.write_line(f"  {_postgres_skipped[0]}")
        terminalreporter.write_line(
            "start PostgreSQL (or set MAILROOM_TEST_POSTGRES_URL) to run them; .ci/run does."
        )


# -- processes: no worker started by a test outlives it ------------------------------------


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a subprocess that is killed at teardown if the test left it running (a failed
    assertion or a timeout must not leave a worker spinning on the machine)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def outbox(database_url: str) -> Iterator[Outbox]:
    """An outbox on a fresh, migrated database with default settings (test modules that need
    other settings define their own)."""
    box = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    database.upgrade(box.engine)
    yield box
    box.dispose()
