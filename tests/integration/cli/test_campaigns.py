"""``mailroom campaign ...`` as an operator runs it: real ``mailroom`` subprocesses, a real
relay, both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mailroom.config import SETTING_NAMES
from mailroom.outbox.database import create_outbox_engine
from support.campaign_lists import make_list
from support.smtp_server import SMTPTestServer

POSTAL = "Acme Ltd, 1 Main St, Springfield"


def mailroom(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    for name in ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"):
        clean.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(database_url: str, smtp_server: SMTPTestServer) -> dict[str, str]:
    settings = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "DEFAULT_FROM_EMAIL": "Acme <news@acme.example>",
        "EMAIL_TIMEOUT": "5",
        "PUBLIC_BASE_URL": "https://mail.acme.example",
        "SECRET_KEY": "a-test-secret-key-of-some-length-0123456789",
        "ORGANIZATION_POSTAL_ADDRESS": POSTAL,
    }
    upgraded = mailroom(settings, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    engine = create_outbox_engine(database_url)
    make_list(engine, "readers", 300)
    engine.dispose()
    return settings


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "news.md"
    path.write_text("# Hello {{ contact.name }}\n\nYou are on **{{ contact.plan }}**.\n")
    return path


def create(env: dict[str, str], body: Path) -> int:
    made = mailroom(
        env,
        "campaign",
        "create",
        "--list",
        "readers",
        "--subject",
        "News for {{ contact.name }}",
        "--markdown",
        str(body),
        "--from",
        "Acme <news@acme.example>",
        "--name",
        "December news",
    )
    assert made.returncode == 0, made.stderr
    return int(made.stdout.strip())


def test_create_send_and_watch_to_the_end(
    env: dict[str, str], body: Path, smtp_server: SMTPTestServer
) -> None:
    campaign_id = create(env, body)
    sent = mailroom(env, "campaign", "send", str(campaign_id))
    assert sent.returncode == 0, sent.stderr
    assert f"campaign {campaign_id} finished: 300 sent, 0 failed" in sent.stdout
    got = Counter(rcpt for message in smtp_server.scripted.received for rcpt in message.rcpt_tos)
    assert len(got) == 300
    assert set(got.values()) == {1}
    status = mailroom(env, "campaign", "status", str(campaign_id), "--json")
    assert status.returncode == 0, status.stderr
    read = json.loads(status.stdout)
    assert read["status"] == "finished"
    assert read["recipients"] == {
        "pending": 0,
        "queued": 0,
        "sent": 300,
        "failed": 0,
        "suppressed": 0,
        "skipped": 0,
        "total": 300,
    }
    again = mailroom(env, "campaign", "send", str(campaign_id))
    assert again.returncode == 1
    assert "is finished" in again.stderr


def test_detach_pause_resume_and_a_worker_finishes_it(
    env: dict[str, str], body: Path, smtp_server: SMTPTestServer
) -> None:
    campaign_id = create(env, body)
    started = mailroom(env, "campaign", "send", str(campaign_id), "--detach")
    assert started.returncode == 0, started.stderr
    assert f"campaign {campaign_id}: sending" in started.stdout
    paused = mailroom(env, "campaign", "pause", str(campaign_id))
    assert paused.returncode == 0, paused.stderr
    assert "paused" in paused.stdout
    refused = mailroom(env, "campaign", "send", str(campaign_id))
    assert refused.returncode == 1
    assert "mailroom campaign resume" in refused.stderr
    resumed = mailroom(env, "campaign", "resume", str(campaign_id))
    assert resumed.returncode == 0, resumed.stderr
    worked = mailroom(env, "worker", "--once")
    assert worked.returncode == 0, worked.stderr
    status = json.loads(mailroom(env, "campaign", "status", str(campaign_id), "--json").stdout)
    assert status["status"] == "finished"
    assert status["recipients"]["sent"] == 300
    assert len(smtp_server.scripted.received) == 300


def test_a_test_send_is_marked_and_not_in_the_ledger(
    env: dict[str, str], body: Path, smtp_server: SMTPTestServer
) -> None:
    campaign_id = create(env, body)
    tested = mailroom(
        env, "campaign", "test", str(campaign_id), "me@acme.example", "--as", "reader3@example.com"
    )
    assert tested.returncode == 0, tested.stderr
    assert mailroom(env, "worker", "--once").returncode == 0
    (message,) = smtp_server.scripted.received
    assert message.rcpt_tos == ["me@acme.example"]
    assert b"Subject: [Test] News for Reader 3" in message.data
    status = json.loads(mailroom(env, "campaign", "status", str(campaign_id), "--json").stdout)
    assert status["status"] == "draft"
    assert status["recipients"]["total"] == 0


def test_sending_without_the_postal_address_names_the_setting(
    env: dict[str, str], body: Path
) -> None:
    campaign_id = create(env, body)
    refused = mailroom(
        {**env, "ORGANIZATION_POSTAL_ADDRESS": ""}, "campaign", "send", str(campaign_id)
    )
    assert refused.returncode == 1
    assert "ORGANIZATION_POSTAL_ADDRESS" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
