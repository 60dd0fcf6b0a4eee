"""``mailroom db upgrade``, ``send``, ``worker`` and ``status``, end to end on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from mailroom.cli import main
from mailroom.config import SETTING_NAMES
from support.smtp_server import TEST_USER, ServerFactory, SMTPTestServer
from support.tls_files import TLSFiles


def run(env: dict[str, str], *args: str) -> Result:
    clean: dict[str, str | None] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    return CliRunner().invoke(main, list(args), env={**clean, **env}, catch_exceptions=False)


def test_send_then_worker_delivers_and_logs_json_lines(
    database_url: str, smtp_server: SMTPTestServer, tmp_path: Path
) -> None:
    send_log = tmp_path / "logs" / "send.log"
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
        "SEND_LOG_FILE": str(send_log),
    }
    refused = run(env, "worker", "--once")
    assert refused.exit_code == 1
    assert "mailroom db upgrade" in refused.output

    assert run(env, "db", "upgrade").exit_code == 0
    first = run(env, "send", "--to", "ada@example.com", "--subject", "Hi", "--text", "hello")
    assert first.exit_code == 0, first.output
    message_pk = int(first.output.strip())
    # The same request twice with an idempotency key gets the same answer.
    keyed = ("send", "--to", "ada@example.com", "--subject", "Hi", "--text", "x")
    again = run(env, *keyed, "--idempotency-key", "k1")
    same = run(env, *keyed, "--idempotency-key", "k1")
    assert again.output == same.output

    worker = run(env, "worker", "--once")
    assert worker.exit_code == 0, worker.output
    assert "sent 2" in worker.output
    assert len(smtp_server.scripted.received) == 2

    lines = [json.loads(line) for line in send_log.read_text().splitlines()]
    assert len(lines) == 2
    first_attempt = next(line for line in lines if line["message_pk"] == message_pk)
    assert first_attempt["recipient"] == "ada@example.com"
    assert first_attempt["outcome"] == "sent"
    assert first_attempt["code"] == 250
    assert first_attempt["transport"] == "smtp"
    assert first_attempt["duration_ms"] >= 0

    status = run(env, "status", "--json")
    state = json.loads(status.output)
    assert state["counts"]["sent"] == 2
    assert state["sent_last_minute"] == 2


def test_status_says_why_a_stream_is_paused(
    database_url: str, smtp_server_factory: ServerFactory, tls: TLSFiles
) -> None:
    server = smtp_server_factory("starttls", auth=True, auth_required=True)
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_USE_TLS": "true",
        "EMAIL_SSL_CAFILE": str(tls.ca_path),
        "EMAIL_HOST_USER": TEST_USER,
        "EMAIL_HOST_PASSWORD": "not-the-password",
    }
    assert run(env, "db", "upgrade").exit_code == 0
    assert (
        run(env, "send", "--to", "ada@example.com", "--subject", "Hi", "--text", "x").exit_code == 0
    )
    worker = run(env, "worker", "--once")
    assert worker.exit_code == 3, worker.output  # a stream ended paused: cron must notice
    assert "paused 1" in worker.output

    status = run(env, "status")
    assert "queued 1" in status.output  # no message failed because our password is wrong
    assert "PAUSED stream transactional" in status.output
    assert "535" in status.output
    assert "not-the-password" not in status.output + worker.output


def test_send_takes_comma_lists_and_says_what_is_wrong_with_an_address(
    database_url: str, smtp_server: SMTPTestServer
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_server.port),
    }
    assert run(env, "db", "upgrade").exit_code == 0
    listed = run(env, "send", "--to", "ada@example.com, bob@example.com", "--subject", "Hi")
    assert listed.exit_code == 0, listed.output
    assert run(env, "worker", "--once").exit_code == 0
    (delivered,) = smtp_server.handler.received
    assert sorted(delivered.rcpt_tos) == ["ada@example.com", "bob@example.com"]

    for value, words in [
        ("Ada <ada@example.com", "missing the '>'"),
        ("ada@example.com bob@example.com", "more than one '@'"),
    ]:
        refused = run(env, "send", "--to", value, "--subject", "Hi")
        assert refused.exit_code == 1
        assert words in refused.output
        assert "Traceback" not in refused.output
