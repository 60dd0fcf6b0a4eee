"""Terminal escapes in stored data never reach the operator's terminal.

A subject, a recipient, a stream name, a header and a relay's reply hold ESC sequences (clear
screen, colours, a window title), C1 controls, DEL and a bidi override; each command that
prints them runs as a real ``mailroom`` subprocess, and its output must hold none of those
characters raw, only their visible escapes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from mailroom.config import SETTING_NAMES, load_settings
from mailroom.message import Message
from mailroom.outbox import database, queries, stream_queries
from mailroom.outbox.schema import messages
from mailroom.outbox.store import Outbox
from mailroom.outbox.vocabulary import Status

CLEAR = "\x1b[2J"
RED = "\x1b[31m"
TITLE = "\x1b]0;owned\x07"
CSI_C1 = "\x9b2J"
OVERRIDE = "\u202egpj.exe"
HOSTILE = f"{CLEAR}{RED}{TITLE}{CSI_C1}\x7f{OVERRIDE}"

# What must never be printed raw: C0 controls but LF (and TAB, harmless), DEL, C1, the bidi
# embeddings, overrides and isolates, line and paragraph separators.
RAW = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069]"
)


def mailroom(database_url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    for name in ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"):
        env.pop(name, None)
    env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def assert_nothing_raw(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8")  # also: every byte was valid UTF-8
    err = result.stderr.decode("utf-8")
    for stream in (out, err):
        found = RAW.search(stream)
        assert found is None, f"raw {found.group()!r} in {stream!r}" if found else ""
    return out


@pytest.fixture
def hostile_message(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A failed message whose every printed field was written by an attacker."""
    monkeypatch.chdir(tmp_path)
    outbox = Outbox(load_settings(environ={"DATABASE_URL": database_url}))
    database.upgrade(outbox.engine)
    message_pk = outbox.send(Message(to=["ada@example.com"], subject="Hi", text="hello"))
    now = time.time()
    header = f"Subject: {HOSTILE}\r\nX-Note: {TITLE}\r\n".encode()
    with outbox.engine.begin() as connection:
        data = connection.execute(messages.select().where(messages.c.id == message_pk)).one().data
        connection.execute(
            update(messages)
            .where(messages.c.id == message_pk)
            .values(
                status=Status.FAILED.value,
                subject=HOSTILE,
                recipients=[f"ada{RED}@example.com{TITLE}"],
                stream=f"tx{CLEAR}",
                last_error=f"550 {HOSTILE}",
                data=header + bytes(data),
            )
        )
        queries.record_attempts(
            connection,
            [
                {
                    "message_pk": message_pk,
                    "attempt": 1,
                    "at": now,
                    "duration_ms": 3.0,
                    "recipient": f"ada{RED}@example.com",
                    "transport": "smtp",
                    "outcome": "failed",
                    "code": 550,
                    "enhanced_status": "5.1.1",
                    "server_text": f"no such user {HOSTILE}",
                    "possible_duplicate": False,
                    "worker": "w",
                }
            ],
        )
        stream_queries.pause_stream(
            connection, f"tx{CLEAR}", until=now + 600, reason=f"AUTH refused: 535 {HOSTILE}"
        )
    outbox.dispose()
    return message_pk


def test_queue_list_shows_escapes_not_raw_controls(hostile_message: int, database_url: str) -> None:
    out = assert_nothing_raw(mailroom(database_url, "queue", "list"))
    assert "\\x1b[2J" in out  # the stream and subject, shown for what they are
    assert "\\x1b]0;owned\\x07" in out  # the window title, inert
    # A clipped column ends with whole escapes, never half of one.
    assert re.search(r"\\(?:x[0-9a-f]?|u[0-9a-f]{0,3})…", out) is None, out


def test_queue_show_shows_escapes_not_raw_controls(hostile_message: int, database_url: str) -> None:
    out = assert_nothing_raw(mailroom(database_url, "queue", "show", str(hostile_message)))
    assert "X-Note: \\x1b]0;owned\\x07" in out  # a header field, as stored
    assert "ada\\x1b[31m@example.com" in out  # envelope and send log
    assert "no such user \\x1b[2J" in out
    assert "\\x9b2J\\x7f\\u202egpj.exe" in out


def test_status_shows_escapes_not_raw_controls(hostile_message: int, database_url: str) -> None:
    out = assert_nothing_raw(mailroom(database_url, "status"))
    assert "PAUSED stream tx\\x1b[2J" in out
    assert "535 \\x1b[2J" in out
    assert "no such user \\x1b[2J" in out


def test_streams_list_shows_escapes_not_raw_controls(
    hostile_message: int, database_url: str
) -> None:
    out = assert_nothing_raw(mailroom(database_url, "streams", "list"))
    assert "tx\\x1b[2J" in out
