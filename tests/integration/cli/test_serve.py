"""``mailroom serve`` as a real process: a first start with no settings, what it prints, the
schema it refuses, and how it stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from mailroom.config import load_settings
from mailroom.consent.tokens import UnsubscribeTokens
from mailroom.message import Message
from mailroom.outbox import database
from mailroom.outbox.schema import events, messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import EventType, Status
from mailroom.tracking.tokens import TrackingTokens
from support.service import ServiceProcess, serve_args, service_env

PASSWORD = "serve-test-password-never-shown"
STOP_WITHIN = 20.0  # seconds: far below the hard cap, far above a clean stop


def test_a_first_start_with_no_settings_creates_the_sqlite_file_and_says_what_it_does(
    tmp_path: Path,
) -> None:
    with ServiceProcess({}, cwd=tmp_path) as service:
        assert (tmp_path / "mailroom.db").is_file()
        assert service.url.startswith("http://127.0.0.1:")
        assert not service.url.endswith(":0")
        assert service.get("/healthz").json() == {"status": "ok"}
        ready = service.get("/readyz")
        assert ready.status_code == 200, ready.text
        shown = service.stdout
        started = time.monotonic()
        assert service.stop() == 0
        assert time.monotonic() - started < STOP_WITHIN
    assert f"data: sqlite:///{tmp_path / 'mailroom.db'}" in shown
    assert "  mode: " in shown
    assert "worker: embedded" in shown
    assert "mailroom serve: stopped" in service.stdout
    assert "Traceback" not in service.output


def test_no_worker_says_so_and_runs_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    env = {"DATABASE_URL": url, "MAILROOM_TRANSPORT": "null", "WORKER_POLL_INTERVAL": "0.05"}
    outbox = Outbox(load_settings(environ=env))
    database.upgrade(outbox.engine)
    try:
        with ServiceProcess(env, ["--no-worker"], cwd=tmp_path) as service:
            outbox.send(Message(to=["a@example.com"], subject="hi", text="x"))
            time.sleep(1.0)  # a worker polling every 0.05 s would have sent it by now
            with outbox.engine.connect() as connection:
                status = connection.execute(text("select status from mailroom_messages")).scalar()
            assert status == "queued"
        assert "worker: none (--no-worker)" in service.stdout
        assert service.returncode == 0
    finally:
        outbox.dispose()


def test_an_old_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    database.upgrade(engine, "0001")
    engine.dispose()
    result = subprocess.run(
        serve_args(),
        env=service_env({"DATABASE_URL": url}),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mailroom: error: the database ")
    assert "mailroom db upgrade" in lines[0]
    assert b"listening on" not in result.stdout


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with ServiceProcess({}, cwd=tmp_path) as service:
        port = service.url.rsplit(":", 1)[1]
        result = subprocess.run(
            [*serve_args(), "--port", port],
            env=service_env({}),
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.decode().startswith(
        f"mailroom: error: cannot listen on 127.0.0.1 port {port}"
    )


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_serve_with_status_0(tmp_path: Path, signal_name: str) -> None:
    with ServiceProcess({}, cwd=tmp_path) as service:
        started = time.monotonic()
        service.signal(getattr(signal, signal_name))
        assert service.wait(STOP_WITHIN) == 0
        assert time.monotonic() - started < STOP_WITHIN
    assert ": sent 0, deferred 0" in service.stdout


def test_serve_on_each_database_creates_tables_only_in_a_new_sqlite_file(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("postgresql"):  # the test server trusts local connections
        database_url = make_url(database_url).set(password=PASSWORD).render_as_string(False)
    env = {"DATABASE_URL": database_url, "MAILROOM_TRANSPORT": "null"}
    if database_url.startswith("postgresql"):
        refused = subprocess.run(
            serve_args(),
            env=service_env(env),
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1
        assert b"has no Mailroom tables" in refused.stderr
        assert b"mailroom db upgrade" in refused.stderr
        assert PASSWORD.encode() not in refused.stderr
        outbox = Outbox(load_settings(environ=env))
        database.upgrade(outbox.engine)
        outbox.dispose()
    with ServiceProcess(env, cwd=tmp_path) as service:
        assert service.get("/readyz").status_code == 200
        assert service.get("/metrics").status_code == 200
    assert service.returncode == 0
    assert "data: " in service.stdout
    assert PASSWORD not in service.output


def test_the_helper_runs_serve_in_a_folder_of_its_own_by_default() -> None:
    with ServiceProcess({}) as service:
        folder = service.cwd
        assert (folder / "mailroom.db").is_file()
        assert service.get("/healthz").status_code == 200
    assert service.returncode == 0
    assert not folder.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_mid_request_still_stops_the_worker_and_writes_the_hits(
    tmp_path: Path, signum: signal.Signals
) -> None:
    secret = "serve-stop-secret-0123456789-abcdefghij"
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'o.db'}",
        "SECRET_KEY": secret,
        "MAILROOM_TRANSPORT": "null",
        "WORKER_POLL_INTERVAL": "0.05",
    }
    settings = load_settings(environ=env)
    outbox = Outbox(settings)
    database.upgrade(outbox.engine)
    try:
        pk = outbox.send(Message(to=["ada@example.com"], subject="hi", text="x"))
        with outbox.engine.connect() as connection:
            message_id = connection.execute(
                select(messages.c.message_id).where(messages.c.id == pk)
            ).scalar_one()
        pixel = TrackingTokens(settings).open_token(message_id, "ada@example.com")
        unsubscribe = UnsubscribeTokens(settings).make("ada@example.com", "all")
        service = ServiceProcess(env, cwd=tmp_path).start()
        try:
            deadline = time.monotonic() + STOP_WITHIN
            while outbox.counts()[Status.SENT] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert service.get(f"/trck/{pixel}").status_code == 200
            where = urlsplit(service.url)
            assert where.hostname is not None
            assert where.port is not None
            slow = socket.create_connection((where.hostname, where.port))
            slow.sendall(  # a request still reading its body when the signals come
                f"POST /unsubscribe/{unsubscribe} HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                "Content-Length: 100\r\n\r\nab".encode()
            )
            time.sleep(0.3)
            signalled = time.monotonic()
            service.signal(signum)
            time.sleep(0.3)
            service.signal(signum)
            code = service.wait(STOP_WITHIN)
            stopped_after = time.monotonic() - signalled
            slow.close()
        finally:
            service.kill()
        assert "this is a bug" not in service.output, service.output
        assert code == 0, service.output
        assert stopped_after < 5.0, service.output  # the HTTP grace (10 s) was cut short
        # The app's shutdown ran: the worker stopped and said so, and the hit was written.
        assert "worker " in service.stdout
        assert ": sent 1, deferred 0" in service.stdout
        with outbox.engine.connect() as connection:
            opened = connection.execute(
                select(events.c.id).where(events.c.type == EventType.OPENED.value)
            ).all()
        assert len(opened) == 1
    finally:
        outbox.dispose()
