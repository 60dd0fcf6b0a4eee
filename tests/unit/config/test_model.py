"""The settings model: defaults, frozen values, derived values (port, noreply address), and
secrets that no repr or dump shows."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from mailroom.config import (
    Backend,
    Settings,
    load_settings,
)
from mailroom.errors import SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_no_password,
)

SECRET_KEY_VALUE = "k3y-Th4t-Must-N3ver-Show-0123456789abcdef"


def test_defaults_with_nothing_set() -> None:
    settings = load_settings(environ={})
    assert settings.EMAIL_BACKEND is Backend.CAPTURE
    assert settings.EMAIL_HOST == "localhost"
    assert settings.EMAIL_PORT is None
    assert settings.port == 25
    assert settings.EMAIL_HOST_USER == ""
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == ""
    assert settings.EMAIL_USE_TLS is False
    assert settings.EMAIL_USE_SSL is False
    assert settings.EMAIL_TIMEOUT == 30.0
    assert settings.DEFAULT_FROM_EMAIL == "webmaster@localhost"
    assert Path("mailroom-mail") == settings.EMAIL_FILE_PATH
    assert settings.EMAIL_MAX_MESSAGE_SIZE == 25 * 1024 * 1024
    assert settings.SECRETS_FILE is None
    assert settings.warnings == ()
    for name in Settings.model_fields:
        assert settings.source_of(name) == "default"


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})
    with pytest.raises(ValueError, match="frozen"):
        settings.EMAIL_HOST = "elsewhere"  # type: ignore[misc]


def test_settings_reject_unknown_fields_when_built_directly() -> None:
    with pytest.raises(ValueError, match="EMAIL_HOTS"):
        Settings.model_validate({"EMAIL_HOTS": "x"})


@pytest.mark.parametrize(
    ("environ", "port"),
    [
        ({}, 25),
        ({"EMAIL_USE_TLS": "true"}, 587),
        ({"EMAIL_USE_SSL": "true"}, 465),
        ({"EMAIL_PORT": "2525"}, 2525),
        ({"EMAIL_PORT": "2525", "EMAIL_USE_SSL": "true"}, 2525),
        ({"EMAIL_PORT": "1", "EMAIL_USE_TLS": "true"}, 1),
        ({"EMAIL_PORT": "65535"}, 65535),
    ],
)
def test_port(environ: dict[str, str], port: int) -> None:
    assert load_settings(environ=environ).port == port


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "noreply@localhost"),
        ({"DEFAULT_FROM_EMAIL": "team@example.com"}, "noreply@example.com"),
        ({"DEFAULT_FROM_EMAIL": "The Team <team@example.com>"}, "noreply@example.com"),
        ({"DEFAULT_FROM_EMAIL": "The Team <team@mail.example.com> "}, "noreply@mail.example.com"),
        (
            {"DEFAULT_FROM_EMAIL": "team@example.com", "NOREPLY_EMAIL_ADDRESS": "nr@x.example"},
            "nr@x.example",
        ),
    ],
)
def test_noreply_address(environ: dict[str, str], expected: str) -> None:
    assert load_settings(environ=environ).noreply_address == expected


def test_password_is_a_secret_str() -> None:
    settings = load_settings(environ={"EMAIL_HOST_PASSWORD": PASSWORD})
    assert isinstance(settings.EMAIL_HOST_PASSWORD, SecretStr)
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD


@pytest.mark.parametrize(
    "environ",
    [
        {"EMAIL_HOST_PASSWORD": PASSWORD},
        {"EMAIL_URL": f"smtp://ada:{quote(PASSWORD, safe='')}@h.example:587?tls=true"},
    ],
    ids=["setting", "url"],
)
def test_password_never_in_repr_str_or_dumps(environ: dict[str, str]) -> None:
    settings = load_settings(environ=environ)
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    dumped = settings.model_dump()
    assert_no_password(
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        repr(dumped),
        str(dumped),
        repr(settings.EMAIL_HOST_PASSWORD),
        str(settings.EMAIL_HOST_PASSWORD),
        f"{settings.EMAIL_HOST_PASSWORD}",
        *(settings.source_of(name) for name in Settings.model_fields),
    )
    assert "**********" in settings.model_dump_json()


def test_notification_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.EMAIL_SUBJECT_PREFIX == ""
    assert settings.server_email == "webmaster@localhost"
    assert settings.ADMINS == ()
    assert settings.EMAIL_FALLBACK_TO == ()
    assert settings.ADD_TOKENS_TO_NOREPLY_ADDRESS is True
    assert settings.FRONTEND_BASE_URL == ""
    assert settings.PUBLIC_BASE_URL == ""
    assert settings.NOTIFICATION_TYPE_HEADER == "X-Mailroom-Notification-Type"
    assert settings.EMAIL_TEMPLATE_DIRS == ()
    assert settings.UNSUBSCRIBE_TOKEN_MAX_AGE == 365 * 24 * 3600


def test_secret_key_from_secrets_file_is_masked(write: WriteFile) -> None:
    path = write("secrets", f"secret_key = {SECRET_KEY_VALUE}\n")
    settings = load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert settings.secret_key("sign links") == SECRET_KEY_VALUE
    assert settings.source_of("SECRET_KEY") == f"secrets file {path}"
    assert SECRET_KEY_VALUE not in repr(settings)
    assert SECRET_KEY_VALUE not in str(settings)


def test_max_recipients_per_message_defaults_to_what_every_relay_takes() -> None:
    assert load_settings(environ={}).EMAIL_MAX_RECIPIENTS_PER_MESSAGE == 100
    settings = load_settings(environ={"EMAIL_MAX_RECIPIENTS_PER_MESSAGE": "1000"})
    assert settings.EMAIL_MAX_RECIPIENTS_PER_MESSAGE == 1000
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_MAX_RECIPIENTS_PER_MESSAGE": "0"})
    assert info.value.setting == "EMAIL_MAX_RECIPIENTS_PER_MESSAGE"
    assert "at least 1" in str(info.value)
