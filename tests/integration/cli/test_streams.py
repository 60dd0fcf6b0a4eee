"""A paused stream, as an operator meets it: ``worker --once`` says so (exit status 3, the
pause logged once, with advice), ``status`` and ``streams list`` show why and what to change,
``streams resume`` lifts it. Real ``mailroom`` subprocesses, a real relay, both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mailroom.config import SETTING_NAMES
from support.smtp_server import SMTPTestServer

REFUSAL = "553 5.7.1 <app@example.com>: Sender address rejected: not owned by user"


def mailroom(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    for name in ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"):
        clean.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(database_url: str, smtp_server: SMTPTestServer, tmp_path: Path) -> dict[str, str]:
    settings = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "DEFAULT_FROM_EMAIL": "app@example.com",
        "EMAIL_TIMEOUT": "5",
    }
    upgraded = mailroom(settings, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return settings


def send(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return mailroom(
        env, "send", "--to", "ada@example.com", "--subject", "Hi", "--text", "x", *extra
    )


def test_a_paused_stream_from_worker_to_resume(
    env: dict[str, str], smtp_server: SMTPTestServer
) -> None:
    for _ in range(3):
        assert send(env).returncode == 0
    smtp_server.scripted.replies["MAIL"] = REFUSAL

    worker = mailroom(env, "worker", "--once", "--concurrency", "3")
    assert worker.returncode == 3, worker.stderr  # cron and CI can tell
    assert "paused 3" in worker.stdout
    # One log line for the pause, however many messages were in flight.
    assert worker.stderr.count("pausing stream transactional") == 1, worker.stderr
    assert "PAUSED stream transactional until" in worker.stderr
    assert "set DEFAULT_FROM_EMAIL to an address the relay accepts" in worker.stderr
    assert "mailroom streams resume transactional" in worker.stderr
    assert smtp_server.scripted.received == []

    status = mailroom(env, "status")
    assert status.returncode == 0, status.stderr
    assert "PAUSED stream transactional until" in status.stdout
    assert REFUSAL in status.stdout
    # The advice send-test-email gives for the same refusal.
    assert "Allow that address at your provider" in status.stdout
    assert "mailroom streams resume transactional" in status.stdout

    listed = mailroom(env, "streams", "list")
    assert listed.returncode == 0, listed.stderr
    header, transactional, bulk, *rest = listed.stdout.splitlines()
    assert header.split() == ["STREAM", "PRIORITY", "WAITING", "PAUSED", "UNTIL"]
    assert transactional.split()[:3] == ["transactional", "0", "3"]
    assert "UTC" in transactional
    assert bulk.split() == ["bulk", "100", "0", "-"]
    assert any("Allow that address at your provider" in line for line in rest)

    # The operator fixes the relay, lifts the pause, and the next pass sends everything.
    del smtp_server.scripted.replies["MAIL"]
    resumed = mailroom(env, "streams", "resume", "transactional")
    assert resumed.returncode == 0, resumed.stderr
    assert "stream transactional resumed" in resumed.stdout
    again = mailroom(env, "streams", "resume", "transactional")
    assert "is not paused" in again.stdout
    assert "PAUSED" not in mailroom(env, "status").stdout

    worker = mailroom(env, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert "sent 3" in worker.stdout
    assert len(smtp_server.scripted.received) == 3


def test_worker_once_exits_3_while_a_stream_is_still_paused(
    env: dict[str, str], smtp_server: SMTPTestServer
) -> None:
    assert send(env).returncode == 0
    smtp_server.scripted.replies["MAIL"] = REFUSAL
    assert mailroom(env, "worker", "--once").returncode == 3
    # Fixed on the relay, but the pause still holds: nothing is sent, and the exit says so.
    del smtp_server.scripted.replies["MAIL"]
    worker = mailroom(env, "worker", "--once")
    assert worker.returncode == 3
    assert "sent 0" in worker.stdout
    assert "PAUSED stream transactional" in worker.stderr
    assert "pausing stream" not in worker.stderr  # not paused again: still paused


def test_resume_an_unknown_stream_names_the_known_ones(env: dict[str, str]) -> None:
    result = mailroom(env, "streams", "resume", "transactionl")
    assert result.returncode == 1
    assert result.stderr.startswith("mailroom: error: there is no stream transactionl;")
    assert "bulk, transactional" in result.stderr


def test_the_worker_logs_one_line_when_it_starts(
    env: dict[str, str], database_url: str, smtp_server: SMTPTestServer
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        # Local PostgreSQL trusts the connection, so any password works: it must not show.
        env["DATABASE_URL"] = url.set(password="s3cret-db-pw").render_as_string(hide_password=False)
    worker = mailroom(env, "worker", "--once", "--concurrency", "2")
    assert worker.returncode == 0, worker.stderr
    start = [line for line in worker.stderr.splitlines() if "worker starting" in line]
    assert len(start) == 1, worker.stderr
    line = start[0]
    assert f"transport smtp 127.0.0.1:{smtp_server.port}" in line
    assert "streams transactional, bulk" in line
    assert "concurrency 2" in line
    assert "s3cret-db-pw" not in worker.stderr + worker.stdout
    if url.get_backend_name() == "postgresql":
        assert f"database postgresql+psycopg://postgres:***@{url.host}" in line
    else:
        assert f"database sqlite:///{url.database}" in line


def test_an_unknown_stream_is_warned_about_on_stderr(env: dict[str, str]) -> None:
    first = send(env, "--stream", "transactionl")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().isdigit()  # stdout stays just the id, for scripts
    assert "--stream transactionl is a new stream" in first.stderr
    assert "the known streams are: bulk, transactional" in first.stderr
    # Once it has messages it is known: no warning again; nor for the built-in streams.
    assert send(env, "--stream", "transactionl").stderr == ""
    assert send(env, "--stream", "bulk").stderr == ""
    assert send(env).stderr == ""
