"""A relay that refuses *us* at RCPT TO, as a stock Postfix does.

With ``smtpd_delay_reject = yes`` (Postfix's default) the checks of the client, the HELO name
and the sender are reported at RCPT TO, in replies whose codes a refused recipient shares. They
are about our configuration: the worker must pause the stream with every message kept (no
attempt used), and ``send-test-email`` must give the advice that fits, not blame the address.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from mailroom.cli import main
from mailroom.config import SETTING_NAMES, load_settings
from mailroom.delivery.worker import Worker
from mailroom.message import Message
from mailroom.outbox.schema import attempts, messages, streams
from mailroom.outbox.store import Outbox
from support.smtp_server import ServerFactory, SMTPTestServer

SENDER = "app@example.com"

LOG_IN = "set EMAIL_HOST_USER and EMAIL_HOST_PASSWORD"


def refusal(name: str, reply: str, *advice: str) -> Any:
    """A case: the relay's reply at RCPT, and words the advice must hold."""
    return pytest.param(reply, list(advice), id=name)


REFUSALS = [
    refusal(
        "sender-not-owned",
        f"553 5.7.1 <{SENDER}>: Sender address rejected: not owned by user",
        "set DEFAULT_FROM_EMAIL to an address the relay accepts",
        "not the recipient",
    ),
    refusal(
        "helo-not-fqdn",
        "504 5.5.2 <box>: Helo command rejected: need fully-qualified hostname",
        "Set EMAIL_LOCAL_HOSTNAME",
        "fully-qualified",
    ),
    refusal(
        "relay-access-denied",
        "554 5.7.1 <ops@example.org>: Relay access denied",
        "relay access denied",
        LOG_IN,
    ),
    refusal(
        "client-host-rejected",
        "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied",
        "client host rejected",
        LOG_IN,
    ),
]


def refusing_relay(factory: ServerFactory, reply: str) -> SMTPTestServer:
    server = factory()
    server.scripted.replies["RCPT"] = reply
    return server


@pytest.mark.parametrize(("reply", "advice"), REFUSALS)
async def test_the_worker_pauses_the_stream_and_keeps_every_message(
    outbox: Outbox,
    smtp_server_factory: ServerFactory,
    reply: str,
    advice: list[str],
) -> None:
    server = refusing_relay(smtp_server_factory, reply)
    ids = [
        outbox.send(Message(to=[f"user{i}@example.org"], from_email=SENDER, subject="Hi", text="x"))
        for i in range(3)
    ]
    settings = load_settings(
        environ={
            "DATABASE_URL": outbox.settings.DATABASE_URL,
            "EMAIL_BACKEND": "smtp",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(server.port),
            "EMAIL_TIMEOUT": "5",
            "WORKER_POLL_INTERVAL": "0.01",
            "WORKER_CONCURRENCY": "1",
        }
    )
    worker = Worker(settings, once=True, rng=random.Random(0))
    try:
        await asyncio.wait_for(worker.run(), timeout=30)
    finally:
        worker.engine.dispose()

    assert server.scripted.received == []
    assert worker.stats.paused >= 1
    assert (worker.stats.failed, worker.stats.deferred, worker.stats.sent) == (0, 0, 0)
    with outbox.engine.connect() as connection:
        rows = list(connection.execute(select(messages).order_by(messages.c.id)))
        outcomes = set(connection.execute(select(attempts.c.outcome)).scalars())
        [stream] = list(connection.execute(select(streams)))
    # Every message still queued, none has used an attempt; the stream waits for a fix.
    assert [r.id for r in rows] == ids
    assert {(r.status, r.attempts) for r in rows} == {("queued", 0)}
    assert outcomes == {"paused"}
    assert stream.name == "transactional"
    assert stream.paused_until is not None
    assert reply.split(" ", 2)[2] in stream.pause_reason
    assert "our configuration is wrong" in stream.pause_reason


def run_send_test_email(port: int, tmp_path: Path) -> str:
    config = tmp_path / "mailroom.toml"
    config.write_text(
        f'EMAIL_HOST = "127.0.0.1"\nEMAIL_PORT = {port}\nDEFAULT_FROM_EMAIL = "{SENDER}"\n'
        "EMAIL_TIMEOUT = 5\n"
    )
    clean: dict[str, Any] = dict.fromkeys(
        (*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS")
    )
    result = CliRunner().invoke(
        main,
        ["send-test-email", "--config", str(config), "ops@example.org"],
        env=clean,
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    return result.output


@pytest.mark.parametrize(("reply", "advice"), REFUSALS)
def test_send_test_email_gives_the_advice_that_fits(
    smtp_server_factory: ServerFactory,
    tmp_path: Path,
    reply: str,
    advice: list[str],
) -> None:
    server = refusing_relay(smtp_server_factory, reply)
    output = run_send_test_email(server.port, tmp_path)
    assert reply in output  # the relay's own words
    for words in advice:
        assert words.lower() in output.lower(), output
    assert "refused the recipient" not in output
    assert "Check the address" not in output
    assert server.scripted.received == []
