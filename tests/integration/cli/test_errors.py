"""The error catalogue of the ``mailroom`` command: every broken situation gives a few lines
naming the setting or field and the fix, never a traceback (``-v`` shows one).

Each row creates the situation for real (a settings file, an environment variable, a file of
Latin-1 bytes, a closed port) and runs a real ``mailroom`` subprocess. The database faults
are catalogued in their own file.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mailroom.cli.base import EXIT_INTERNAL, MailroomGroup
from mailroom.config import SETTING_NAMES, load_settings
from mailroom.errors import SettingsError
from mailroom.logs import attach_log_files

MAX_LINES = 5


def mailroom(
    tmp_path: Path, args: list[str | bytes], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    for name in ("EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"):
        clean.pop(name, None)
    clean["DATABASE_URL"] = f"sqlite:///{tmp_path / 'outbox.db'}"
    clean["LANG"] = clean["LC_ALL"] = "C.UTF-8"
    return subprocess.run(
        [
            sys.executable.encode(),
            b"-m",
            b"mailroom",
            *(a.encode() if isinstance(a, str) else a for a in args),
        ],
        env={**clean, **(env or {})},
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _upgrade(tmp_path: Path) -> None:
    done = mailroom(tmp_path, ["db", "upgrade"])
    assert done.returncode == 0, done.stderr


@dataclass
class Case:
    """One broken situation: what to run, and what its answer must name."""

    args: list[str | bytes]
    names: list[str]
    """The setting, field or option at fault, and words of the fix."""
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    exit_code: int = 1
    setup: Callable[[Path], None] | None = None
    max_lines: int = MAX_LINES


CASES = {
    "TLS and SSL both on": Case(
        ["send-test-email", "ops@example.com"],
        ["EMAIL_USE_TLS", "EMAIL_USE_SSL", "587", "465"],
        env={"EMAIL_HOST": "127.0.0.1", "EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"},
    ),
    "unknown setting in the settings file": Case(
        ["--config", "mailroom.toml", "status"],
        ["EMAIL_HOTS", "mailroom.toml", "did you mean EMAIL_HOST"],
        files={"mailroom.toml": b'EMAIL_HOTS = "smtp.example.com"\n'},
    ),
    "a port that is not a number": Case(
        ["send-test-email", "ops@example.com"],
        ["EMAIL_PORT", "'abc'", "environment"],
        env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": "abc"},
    ),
    "a port out of range": Case(
        ["send-test-email", "ops@example.com"],
        ["EMAIL_PORT", "70000", "1 to 65535"],
        env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": "70000"},
    ),
    "a non-UTF-8 argument": Case(
        ["send", "--to", "ada@example.com", "--subject", b"caf\xe9", "--text", "x"],
        ["--subject", "not valid UTF-8", "\\xe9", "LANG=C.UTF-8"],
        exit_code=2,
    ),
    "a non-UTF-8 address": Case(
        ["send", "--to", b"ad\xff@example.com", "--subject", "s", "--text", "x"],
        ["--to", "not valid UTF-8", "\\xff"],
        exit_code=2,
    ),
    "a non-UTF-8 file": Case(
        ["send", "--to", "ada@example.com", "--subject", "s", "--html", "body.html"],
        ["--html", "body.html", "not UTF-8", "0xe9", "line 2", "save it as UTF-8"],
        files={"body.html": b"<p>\n caf\xe9</p>\n"},
        exit_code=2,
    ),
    "a non-UTF-8 settings file": Case(
        ["--config", "mailroom.toml", "send-test-email", "ops@example.com"],
        ["MAILROOM_CONFIG", "mailroom.toml", "not UTF-8", "line 2", "save it as UTF-8"],
        files={
            "mailroom.toml": b'EMAIL_HOST = "smtp.example.com"\nDEFAULT_FROM_EMAIL = "caf\xe9"\n'
        },
    ),
    "a non-UTF-8 secrets file": Case(
        ["send-test-email", "ops@example.com"],
        ["SECRETS_FILE", "secrets.conf", "not UTF-8", "line 1", "save it as UTF-8"],
        env={"MAILROOM_SECRETS": "secrets.conf"},
        files={"secrets.conf": b"email_password = p\xe4ss\n"},
    ),
    "a missing HTML file": Case(
        ["send", "--to", "ada@example.com", "--subject", "s", "--html", "missing.html"],
        ["--html", "missing.html", "does not exist"],
        exit_code=2,
    ),
    "a missing settings file": Case(
        ["--config", "nowhere.toml", "status"],
        ["nowhere.toml"],
    ),
    "an invalid address in --to": Case(
        ["send", "--to", "ada@", "--subject", "s", "--text", "x"],
        ["to", "'ada@'"],
    ),
    "a bad --send-at": Case(
        ["send", "--to", "ada@example.com", "--subject", "s", "--text", "x", "--send-at", "soon"],
        ["--send-at", "soon", "%Y-%m-%dT%H:%M:%S%z"],
        exit_code=2,
    ),
    "a database that was never upgraded": Case(
        ["queue", "list"],
        ["mailroom db upgrade"],
    ),
    "an unknown message": Case(
        ["queue", "show", "4242"],
        ["4242"],
        setup=_upgrade,
    ),
    "an unknown stream to resume": Case(
        ["streams", "resume", "transactionl"],
        ["transactionl", "transactional"],
        setup=_upgrade,
    ),
    "an unreachable relay in send-test-email": Case(
        ["send-test-email", "ops@example.com"],
        ["refused the connection", "EMAIL_HOST", "EMAIL_PORT"],
        env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(closed_port())},
        max_lines=8,  # the report: transport, attempt, failure, three lines of advice
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_broken_situation_gives_a_short_error_naming_the_fix(
    case: Case, tmp_path: Path
) -> None:
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content)
    if case.setup is not None:
        case.setup(tmp_path)
    result = mailroom(tmp_path, case.args, case.env)
    out = result.stdout.decode("utf-8") + result.stderr.decode("utf-8")
    assert result.returncode == case.exit_code, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert 1 <= len(lines) <= case.max_lines, out
    for name in case.names:
        assert name in out, f"{name!r} not in:\n{out}"
    if case.exit_code == 1 and "send-test-email" not in case.args:
        assert result.stderr.startswith(b"mailroom: error: "), out


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    args: list[str | bytes] = ["-v", "send-test-email", "ops@example.com"]
    result = mailroom(tmp_path, args, {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": "70000"})
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in err
    assert "SettingsError" in err
    assert err.rstrip().splitlines()[-1].startswith("mailroom: error: EMAIL_PORT")


# -- the top level itself, on a throwaway group: an error of every kind -------------------


def _group() -> click.Group:
    @click.group(cls=MailroomGroup)
    @click.option("-v", "--verbose", count=True)
    def group(verbose: int) -> None:
        del verbose

    @group.command("settings")
    def settings() -> None:
        raise SettingsError("EMAIL_PORT", "70000 is not a port number (1 to 65535)")

    @group.command("bug")
    def bug() -> None:
        raise RuntimeError("no such thing\nsecond line")

    @group.command("refuse")
    def refuse() -> None:
        raise click.ClickException("there is no message with id 7")

    return group


def test_a_mailroom_error_is_one_line_and_exit_status_1() -> None:
    result = CliRunner().invoke(_group(), ["settings"])
    assert result.exit_code == 1
    assert result.output == (
        "mailroom: error: EMAIL_PORT: 70000 is not a port number (1 to 65535)\n"
    )


def test_an_unexpected_error_is_two_lines_exit_status_70_and_asks_for_v() -> None:
    result = CliRunner().invoke(_group(), ["bug"])
    assert result.exit_code == EXIT_INTERNAL
    lines = result.output.splitlines()
    assert lines[0] == "mailroom: error: unexpected RuntimeError: no such thing"
    assert "mailroom -v" in lines[1]
    assert len(lines) == 2
    verbose = CliRunner().invoke(_group(), ["-v", "bug"])
    assert "Traceback (most recent call last)" in verbose.output
    assert verbose.exit_code == EXIT_INTERNAL


def test_an_unexpected_error_goes_to_the_error_log_file(tmp_path: Path) -> None:
    log = tmp_path / "errors.log"
    handlers = attach_log_files(load_settings(environ={"ERROR_LOG_FILE": str(log)}))
    try:
        result = CliRunner().invoke(_group(), ["bug"])
    finally:
        for handler in handlers:
            logging.getLogger("mailroom").removeHandler(handler)
            handler.close()
    assert "Traceback" not in result.output
    assert "RuntimeError: no such thing" in log.read_text()
    assert "Traceback (most recent call last)" in log.read_text()


def test_a_commands_own_refusal_takes_the_same_form() -> None:
    result = CliRunner().invoke(_group(), ["refuse"])
    assert result.exit_code == 1
    assert result.output == "mailroom: error: there is no message with id 7\n"
