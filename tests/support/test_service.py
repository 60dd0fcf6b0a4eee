"""The service fixture knows the secrets it was started with and fails a test whose service
printed one (checked without starting a process: the output is what it read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.api_client import SecretWatch
from support.service import ServiceProcess, secrets_of

KEY = "a-secret-key-of-forty-characters-0123456789"
PASSWORD = "smtp-password-never-shown"


def test_the_secrets_come_from_the_environment_and_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "mailroom.toml").write_text(
        f'SECRET_KEY = "{KEY}"\nEMAIL_HOST = "smtp.example.com"\n', encoding="utf-8"
    )
    env = {"MAILROOM_CONFIG": "mailroom.toml", "EMAIL_HOST_PASSWORD": PASSWORD}
    assert secrets_of(env, tmp_path) == [PASSWORD, KEY]
    assert secrets_of({"MAILROOM_CONFIG": "missing.toml", "SECRET_KEY": ""}, tmp_path) == []


def test_output_holding_a_watched_secret_fails_and_other_output_does_not(
    tmp_path: Path,
) -> None:
    watch = SecretWatch()
    service = ServiceProcess({"SECRET_KEY": KEY}, cwd=tmp_path, watch=watch)
    watch.add("mrk_abcdefghijkl_api-key")
    assert watch.secrets == [KEY, "mrk_abcdefghijkl_api-key"]
    service._stderr.append("INFO: 127.0.0.1 - GET /healthz 200\n")
    service.check_output()
    for leaked in (KEY, "mrk_abcdefghijkl_api-key"):
        service._stderr.append(f"DEBUG: something {leaked}\n")
        with pytest.raises(AssertionError, match="the output of mailroom serve contains a secret"):
            service.check_output()
        service._stderr.pop()
