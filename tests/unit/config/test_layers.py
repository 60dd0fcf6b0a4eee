"""Precedence: defaults < settings file < secrets file < environment < overrides, and an
explicit setting over its own layer's EMAIL_URL."""

from __future__ import annotations

import pytest

from mailroom.config import (
    load_settings,
)
from mailroom.errors import SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
)


def test_full_precedence_defaults_file_secrets_environment(write: WriteFile) -> None:
    secrets = write("secrets", "email_password = from-secrets\n")
    config = write(
        "c.toml",
        'EMAIL_HOST = "file.example"\nEMAIL_HOST_USER = "file-user"\n'
        f'EMAIL_HOST_PASSWORD = "from-file"\nSECRETS_FILE = "{secrets}"\n'
        'DEFAULT_FROM_EMAIL = "file@file.example"\n',
    )
    settings = load_settings(
        config_path=config,
        environ={"EMAIL_HOST_USER": "env-user", "EMAIL_PORT": "2525"},
    )
    # default
    assert settings.EMAIL_TIMEOUT == 30.0
    assert settings.source_of("EMAIL_TIMEOUT") == "default"
    # file
    assert settings.EMAIL_HOST == "file.example"
    assert settings.source_of("EMAIL_HOST") == str(config)
    assert settings.DEFAULT_FROM_EMAIL == "file@file.example"
    # secrets file beats settings file
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == "from-secrets"
    assert settings.source_of("EMAIL_HOST_PASSWORD") == f"secrets file {secrets}"
    # environment beats settings file
    assert settings.EMAIL_HOST_USER == "env-user"
    assert settings.source_of("EMAIL_HOST_USER") == "environment"
    assert settings.EMAIL_PORT == 2525
    assert settings.source_of("EMAIL_PORT") == "environment"


def test_environment_beats_secrets_file(write: WriteFile) -> None:
    secrets = write("secrets", "email_password = from-secrets\n")
    settings = load_settings(
        environ={"MAILROOM_SECRETS": str(secrets), "EMAIL_HOST_PASSWORD": PASSWORD}
    )
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.source_of("EMAIL_HOST_PASSWORD") == "environment"


def test_overrides_beat_environment() -> None:
    settings = load_settings(environ={"EMAIL_HOST": "env.example"}, email_host="code.example")
    assert settings.EMAIL_HOST == "code.example"
    assert settings.source_of("EMAIL_HOST") == "overrides"


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, EMAIL_HOTS="x")
    assert info.value.setting == "EMAIL_HOTS"
    assert "did you mean EMAIL_HOST" in str(info.value)


def test_settings_are_read_afresh_each_time(write: WriteFile) -> None:
    path = write("mailroom.toml", 'EMAIL_HOST = "first.example"\n')
    assert load_settings(environ={}).EMAIL_HOST == "first.example"
    path.write_text('EMAIL_HOST = "second.example"\n', encoding="utf-8")
    assert load_settings(environ={}).EMAIL_HOST == "second.example"


def test_explicit_setting_beats_url_in_the_same_layer() -> None:
    settings = load_settings(
        environ={
            "EMAIL_URL": "smtp://ada:url-pass@url.example:587?tls=true",
            "EMAIL_HOST": "explicit.example",
            "EMAIL_HOST_PASSWORD": PASSWORD,
        }
    )
    assert settings.EMAIL_HOST == "explicit.example"
    assert settings.source_of("EMAIL_HOST") == "environment"
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.EMAIL_HOST_USER == "ada"
    assert settings.source_of("EMAIL_HOST_USER") == "EMAIL_URL in environment"
    assert settings.EMAIL_PORT == 587


def test_explicit_setting_beats_url_in_the_settings_file(write: WriteFile) -> None:
    path = write(
        "c.toml",
        'EMAIL_PORT = 2525\nEMAIL_URL = "smtp://url.example:587"\n',
    )
    settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_HOST == "url.example"
    assert settings.source_of("EMAIL_HOST") == f"EMAIL_URL in {path}"
    assert settings.EMAIL_PORT == 2525
    assert settings.source_of("EMAIL_PORT") == str(path)


def test_url_in_environment_beats_settings_file(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_HOST = "file.example"\nEMAIL_PORT = 2525\n')
    settings = load_settings(config_path=path, environ={"EMAIL_URL": "smtp://env.example:1025"})
    assert settings.EMAIL_HOST == "env.example"
    assert settings.EMAIL_PORT == 1025


def test_url_in_settings_file_loses_to_explicit_environment(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_URL = "smtp://file.example:587?tls=true"\n')
    settings = load_settings(config_path=path, environ={"EMAIL_HOST": "env.example"})
    assert settings.EMAIL_HOST == "env.example"
    assert settings.EMAIL_PORT == 587
    assert settings.EMAIL_USE_TLS is True
