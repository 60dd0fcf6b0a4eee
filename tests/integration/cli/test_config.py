"""``mailroom config show`` and ``status`` with a broken configuration, secrets in URLs, and
the modes of the files that hold messages: each runs the real ``mailroom`` command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailroom.config import SETTING_NAMES
from support.processes import Spawn

PASSWORD = "Tr0ub4dor-3-unique"
PIECE = "Tr0ub4dor"


def mailroom(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command in ``cwd`` with no Mailroom setting from the outer shell."""
    ignored = {*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"}
    clean = {k: v for k, v in os.environ.items() if k not in ignored}
    return subprocess.run(
        [sys.executable, "-m", "mailroom", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def rows(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines() if line.strip()}


def test_config_show_runs_with_a_broken_setting_and_shows_every_value(tmp_path: Path) -> None:
    config = tmp_path / "mailroom.toml"
    config.write_text('EMAIL_HOST = "relay.example"\nEMAIL_USE_TLS = true\nEMAIL_PORT = "smtp"\n')
    result = mailroom("config", "show", cwd=tmp_path, env={"EMAIL_USE_SSL": "true"})
    assert result.returncode == 1
    assert_no_traceback(result)
    shown = rows(result.stdout)
    assert set(SETTING_NAMES) <= set(shown)
    assert shown["EMAIL_USE_TLS"].split()[1:] == ["True", str(config)]
    assert shown["EMAIL_USE_SSL"].split()[1:] == ["True", "environment"]
    # The refused value is shown as given, with where it came from.
    assert shown["EMAIL_PORT"].split()[1:] == ["smtp", str(config), "(refused)"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("mailroom: error: ")]
    assert len(errors) == 2
    assert "EMAIL_PORT" in errors[0]
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL are both on" in errors[1]


def test_config_show_json_lists_the_errors(tmp_path: Path) -> None:
    result = mailroom(
        "config",
        "show",
        "--json",
        cwd=tmp_path,
        env={"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"},
    )
    assert result.returncode == 1
    shown = json.loads(result.stdout)
    assert shown["settings"]["EMAIL_USE_SSL"] == {"value": True, "source": "environment"}
    [error] = shown["errors"]
    assert error["setting"] == "EMAIL_USE_TLS"


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    url = f"postgresql://mailroom:{PASSWORD}@db.example:5432/mail"
    table = mailroom("config", "show", cwd=tmp_path, env={"DATABASE_URL": url})
    as_json = mailroom("config", "show", "--json", cwd=tmp_path, env={"DATABASE_URL": url})
    for result in (table, as_json):
        assert result.returncode == 0, result.stderr
        assert PIECE not in result.stdout + result.stderr
    assert "postgresql://mailroom:***@db.example:5432/mail" in rows(table.stdout)["DATABASE_URL"]
    assert "postgresql://mailroom:***@db.example:5432/mail" in as_json.stdout


@pytest.mark.parametrize(
    ("variable", "url", "command", "fragments"),
    [
        *(
            (
                "EMAIL_URL",
                f"smtp://ada:4?timeout={PASSWORD}@relay.example:587",
                command,
                ["EMAIL_URL", "must be percent-encoded"],
            )
            for command in (["config", "show"], ["send-test-email", "ops@example.com"])
        ),
        *(
            (
                "DATABASE_URL",
                f"mysql://ada:{PASSWORD}@db.example/mail",
                command,
                ["DATABASE_URL", "mysql:// is not supported", "mysql://ada:***@db.example/mail"],
            )
            for command in (["status"], ["send", "--to", "a@example.com", "--subject", "s"])
        ),
    ],
    ids=[
        "email-url-unencoded-question-mark-config-show",
        "email-url-unencoded-question-mark-send-test-email",
        "unsupported-database-status",
        "unsupported-database-send",
    ],
)
def test_a_refused_url_is_named_with_its_password_never_echoed(
    tmp_path: Path, variable: str, url: str, command: list[str], fragments: list[str]
) -> None:
    result = mailroom(*command, cwd=tmp_path, env={variable: url})
    assert result.returncode == 1
    assert_no_traceback(result)
    assert PIECE not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in result.stderr
    assert not (tmp_path / "mailroom.db").exists()


def test_status_shows_the_queue_and_the_settings_error(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'queue.db'}"}
    assert mailroom("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    sent = mailroom(
        "send", "--to", "a@example.com", "--subject", "s", "--text", "t", cwd=tmp_path, env=env
    )
    assert sent.returncode == 0, sent.stderr
    broken = {**env, "EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}
    result = mailroom("status", cwd=tmp_path, env=broken)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "queued 1" in result.stdout
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL are both on" in result.stderr
    as_json = mailroom("status", "--json", cwd=tmp_path, env=broken)
    assert as_json.returncode == 1
    state = json.loads(as_json.stdout)
    assert state["counts"]["queued"] == 1
    [error] = state["settings_errors"]
    assert error.startswith("EMAIL_USE_TLS:")
    healthy = mailroom("status", cwd=tmp_path, env=env)
    assert healthy.returncode == 0, healthy.stderr


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("EMAIL_HOST_PASWORD", "EMAIL_HOST_PASSWORD"),
        ("EMAIL_USE_TSL", "EMAIL_USE_TLS"),
        ("MAILROOM_CONFG", "MAILROOM_CONFIG"),
    ],
)
def test_misspelt_variable_is_warned_once_without_its_value(
    tmp_path: Path, variable: str, meant: str
) -> None:
    result = mailroom("config", "show", cwd=tmp_path, env={variable: PASSWORD})
    assert result.returncode == 0
    logged = [line for line in result.stderr.splitlines() if variable in line]
    assert len(logged) == 1
    assert f"did you mean {meant}?" in logged[0]
    assert PIECE not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b'EMAIL_HOST = "h"\nEMAIL_PORT = = 25\n',
            "is not valid TOML: Invalid value (at line 2, column 14)",
        ),
        (b'DEFAULT_FROM_EMAIL = "Zo\xeb <z@x.example>"\n', "is not UTF-8 text (line 1)"),
    ],
)
def test_settings_file_errors_name_the_file_read(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    (tmp_path / "mailroom.toml").write_bytes(content)
    result = mailroom("config", "show", cwd=tmp_path)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert f"settings file {tmp_path / 'mailroom.toml'} {expected}" in result.stderr


# --- the transport's two names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sources"),
    [
        ("MAILROOM_TRANSPORT", ("environment", "MAILROOM_TRANSPORT in environment")),
        ("EMAIL_BACKEND", ("EMAIL_BACKEND in environment", "environment")),
    ],
)
def test_config_show_names_where_the_transport_came_from(
    tmp_path: Path, given: str, sources: tuple[str, str]
) -> None:
    result = mailroom("config", "show", "--json", cwd=tmp_path, env={given: "null"})
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["settings"]
    assert shown["MAILROOM_TRANSPORT"] == {"value": "null", "source": sources[0]}
    assert shown["EMAIL_BACKEND"] == {"value": "null", "source": sources[1]}


@pytest.mark.parametrize(
    ("file_text", "env", "sources"),
    [
        (
            'EMAIL_BACKEND = "console"\n',
            {"MAILROOM_TRANSPORT": "null"},
            ("environment", "MAILROOM_TRANSPORT in environment"),
        ),
        ("", {"MAILROOM_TRANSPORT": "null", "EMAIL_BACKEND": "null"}, ("environment",) * 2),
    ],
    ids=["a-higher-layer-wins", "both-in-one-layer"],
)
def test_config_show_names_where_both_names_came_from(
    tmp_path: Path, file_text: str, env: dict[str, str], sources: tuple[str, str]
) -> None:
    (tmp_path / "mailroom.toml").write_text(file_text)
    result = mailroom("config", "show", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)["settings"]
    assert shown["MAILROOM_TRANSPORT"] == {"value": "null", "source": sources[0]}
    assert shown["EMAIL_BACKEND"] == {"value": "null", "source": sources[1]}


def test_config_show_refuses_mailrooms_django_backend_as_the_transport(tmp_path: Path) -> None:
    env = {"EMAIL_BACKEND": "mailroom.integrations.django.EmailBackend"}
    result = mailroom("config", "show", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert_no_traceback(result)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("mailroom: error:")]
    assert "EMAIL_BACKEND: 'mailroom.integrations.django.EmailBackend' (environment)" in error
    assert "name Mailroom's own transport with MAILROOM_TRANSPORT" in error


def test_config_show_reports_the_two_names_disagreeing(tmp_path: Path) -> None:
    env = {"MAILROOM_TRANSPORT": "smtp", "EMAIL_BACKEND": "console"}
    result = mailroom("config", "show", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert_no_traceback(result)
    [error] = [line for line in result.stderr.splitlines() if line.startswith("mailroom: error:")]
    assert "MAILROOM_TRANSPORT: is 'smtp' (environment) but EMAIL_BACKEND is 'console'" in error


def test_send_test_email_names_the_transport_setting(tmp_path: Path) -> None:
    result = mailroom(
        "send-test-email", "ops@example.com", cwd=tmp_path, env={"MAILROOM_TRANSPORT": "null"}
    )
    assert result.returncode == 0, result.stderr
    assert (
        "were thrown away (MAILROOM_TRANSPORT or EMAIL_BACKEND is null, from environment)"
        in result.stdout
    )


# --- files holding messages are the owner's alone ------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_log_and_capture_files_are_created_0600(tmp_path: Path, spawn: Spawn) -> None:
    database = tmp_path / "outbox.db"
    captured = tmp_path / "captured"
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "EMAIL_BACKEND": "file",
        "EMAIL_FILE_PATH": str(captured),
        "SEND_LOG_FILE": str(tmp_path / "logs" / "send.log"),
        "ERROR_LOG_FILE": str(tmp_path / "logs" / "errors.log"),
    }
    os.umask(old := os.umask(0o022))  # the usual umask, which alone would give 0644
    try:
        assert mailroom("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
        sent = mailroom(
            "send",
            "--to",
            "a@example.com",
            "--subject",
            "Reset",
            "--text",
            "https://app.example/reset/t0ken",
            cwd=tmp_path,
            env=env,
        )
        assert sent.returncode == 0, sent.stderr
        ignored = {*SETTING_NAMES, "EMAIL_URL", "MAILROOM_CONFIG", "MAILROOM_SECRETS"}
        outer = {k: v for k, v in os.environ.items() if k not in ignored}
        worker = spawn([sys.executable, "-m", "mailroom", "worker"], {**outer, **env})
        deadline = time.monotonic() + 60
        while not list(captured.glob("*.eml")) and time.monotonic() < deadline:
            assert worker.poll() is None, worker.communicate()
            time.sleep(0.1)
        # While the worker runs, its WAL files exist; SQLite gives them the database's mode.
        files = [
            database,
            Path(f"{database}-wal"),
            Path(f"{database}-shm"),
            *captured.glob("*.eml"),
            tmp_path / "logs" / "send.log",
            tmp_path / "logs" / "errors.log",
        ]
        assert {str(f.relative_to(tmp_path)): _mode(f) for f in files} == {
            str(f.relative_to(tmp_path)): 0o600 for f in files
        }
        worker.terminate()
        worker.communicate(timeout=30)
    finally:
        os.umask(old)
