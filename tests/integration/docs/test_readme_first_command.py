"""The README's first command, run as written: a fresh virtual environment, ``pip install .``,
``mailroom serve`` with no settings, one message sent through the API with curl, and the
captured-mail list read back. Only the port is changed (8000 may be taken here)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
README = REPOSITORY / "README.md"


def first_command() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.timeout(600)
def test_the_first_command_serves_and_captures_a_message_sent_with_curl(tmp_path: Path) -> None:
    command = first_command()
    assert "mailroom serve" in command
    assert "pip install -q ." in command
    port = free_port()
    # As written, except: the port, and the clone being elsewhere than the working folder.
    command = command.replace("pip install -q .", f"pip install -q {REPOSITORY}")
    command = command.replace("mailroom serve &", f"mailroom serve --port {port} &")
    command = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMAIL_", "MAILROOM_"))}
    env.pop("DATABASE_URL", None)
    env.pop("SECRET_KEY", None)
    script = f"{command}\nstatus=$?\nkill -TERM $! 2>/dev/null\nwait\nexit $status\n"
    bash = shutil.which("bash")
    assert bash is not None
    # A session of its own: whatever the script leaves running is stopped with it below.
    process = subprocess.Popen(
        [bash, "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=540)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stdout + stderr
    created, listing, message = answers(stdout)
    assert created == {"id": 1}
    captured = listing["items"]
    assert [item["subject"] for item in captured] == ["Hello"]
    assert captured[0]["recipients"] == ["you@example.com"]
    assert message["status"] == "sent"
    assert message["attempts"] == 1
    assert [attempt["outcome"] for attempt in message["attempt_log"]] == ["sent"]
    assert [event["type"] for event in message["events"]] == ["queued", "sent"]
    assert "capturing: nothing leaves this machine" in stdout
    assert (tmp_path / "mailroom.db").exists()


def answers(stdout: str) -> list[dict[str, Any]]:
    """The JSON bodies curl printed one after another (with the service's lines between)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    position = stdout.find("{")
    while position != -1:
        value, end = decoder.raw_decode(stdout, position)
        found.append(value)
        position = stdout.find("{", end)
    return found
