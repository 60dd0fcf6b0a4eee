"""Checks across settings, and the errors naming the setting to change."""

from __future__ import annotations

import pytest

from mailroom.config import (
    load_settings,
)
from mailroom.errors import MailroomError, SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_settings_error_hides_password,
)


def test_port_out_of_range_in_settings_file(write: WriteFile) -> None:
    path = write("c.toml", "EMAIL_PORT = 70000\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_PORT"


def test_non_integer_port_from_environment() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_PORT": "smtp"})
    assert info.value.setting == "EMAIL_PORT"
    message = str(info.value)
    assert message.startswith("EMAIL_PORT:")
    assert "'smtp'" in message
    assert "from environment" in message
    assert info.value.__cause__ is None


def test_non_integer_port_from_settings_file(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_PORT = "five-eight-seven"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_PORT"
    assert f"from {path}" in str(info.value)


def test_settings_error_is_a_value_error_and_mailroom_error() -> None:
    with pytest.raises(ValueError, match="EMAIL_PORT") as info:
        load_settings(environ={"EMAIL_PORT": "0"})
    assert isinstance(info.value, MailroomError)


def test_short_or_missing_secret_key_errors_never_show_it() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"SECRET_KEY": "short-Tr0ub4dor"})
    assert info.value.setting == "SECRET_KEY"
    assert "Tr0ub4dor" not in str(info.value)
    with pytest.raises(SettingsError, match="SECRET_KEY: is needed to sign links"):
        load_settings(environ={}).secret_key("sign links")


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://ada:{PASSWORD}@db.example/app",
        f"mariadb+pymysql://ada:{PASSWORD}@db.example/app",
        f"oracle://ada:{PASSWORD}@db.example/app",
        f"postgresql+psycopg2://ada:{PASSWORD}@db.example/app",
        f"PostgreSQL://ada:{PASSWORD}@db.example/app",
        "mailroom.db",
    ],
)
def test_unsupported_database_is_refused_at_configuration_time(url: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"DATABASE_URL": url})
    assert info.value.setting == "DATABASE_URL"
    message = str(info.value)
    assert "sqlite:///" in message
    assert "postgresql://" in message
    assert "environment" in message
    assert_settings_error_hides_password(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///mailroom.db",
        "sqlite:////srv/mailroom.db",
        "sqlite+pysqlite:///x.db",
        "postgresql://ada@db.example/app",
        "postgres://db.example/app",
        "postgresql+psycopg://db.example/app",
    ],
)
def test_supported_databases_are_accepted(url: str) -> None:
    assert url == load_settings(environ={"DATABASE_URL": url}).DATABASE_URL


@pytest.mark.parametrize(
    ("environ", "setting", "fragments"),
    [
        (
            {"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"},
            "EMAIL_USE_TLS",
            ["mutually exclusive", "EMAIL_USE_SSL"],
        ),
        ({"EMAIL_URL": "smtps://h.example?tls=true"}, "EMAIL_USE_TLS", []),
        (
            {"EMAIL_PORT": "465", "EMAIL_USE_TLS": "true"},
            "EMAIL_USE_TLS",
            ["EMAIL_USE_SSL", "implicit TLS"],
        ),
        ({"EMAIL_URL": "smtp://h.example:465?tls=true"}, "EMAIL_USE_TLS", ["EMAIL_USE_SSL"]),
        *(
            ({"EMAIL_PORT": port}, "EMAIL_PORT", [port, "1 to 65535"])
            for port in ("0", "70000", "65536", "-1")
        ),
        *(({"EMAIL_TIMEOUT": timeout}, "EMAIL_TIMEOUT", []) for timeout in ("0", "-5")),
        ({"EMAIL_MAX_MESSAGE_SIZE": "0"}, "EMAIL_MAX_MESSAGE_SIZE", []),
        ({"EMAIL_SSL_KEYFILE": "/etc/ssl/key.pem"}, "EMAIL_SSL_CERTFILE", []),
        ({"EMAIL_USE_TLS": "perhaps"}, "EMAIL_USE_TLS", ["'perhaps'"]),
        ({"ADMINS": "not an address"}, "ADMINS", []),
        ({"EMAIL_FALLBACK_TO": "a@b.example, nope"}, "EMAIL_FALLBACK_TO", []),
        ({"SERVER_EMAIL": "root"}, "SERVER_EMAIL", []),
        ({"PUBLIC_BASE_URL": "http://app.example"}, "PUBLIC_BASE_URL", []),
        ({"PUBLIC_BASE_URL": "https://app.example/?x=1"}, "PUBLIC_BASE_URL", []),
        ({"FRONTEND_BASE_URL": "app.example"}, "FRONTEND_BASE_URL", []),
        ({"NOTIFICATION_TYPE_HEADER": "X-Bad: header"}, "NOTIFICATION_TYPE_HEADER", []),
        ({"UNSUBSCRIBE_TOKEN_MAX_AGE": "0"}, "UNSUBSCRIBE_TOKEN_MAX_AGE", []),
        ({"ADD_TOKENS_TO_NOREPLY_ADDRESS": "perhaps"}, "ADD_TOKENS_TO_NOREPLY_ADDRESS", []),
    ],
    ids=[
        "tls-and-ssl-both-on",
        "smtps-url-with-tls-option",
        "port-465-with-starttls",
        "port-465-via-url-with-tls-option",
        "port-0",
        "port-70000",
        "port-65536",
        "port-minus-1",
        "timeout-0",
        "timeout-minus-5",
        "max-message-size-0",
        "keyfile-without-certfile",
        "boolean-perhaps",
        "admins",
        "fallback-to",
        "server-email",
        "public-base-url-http",
        "public-base-url-query",
        "frontend-base-url",
        "notification-type-header",
        "unsubscribe-token-max-age",
        "add-tokens-to-noreply-address",
    ],
)
def test_a_bad_value_names_the_setting_to_change(
    environ: dict[str, str], setting: str, fragments: list[str]
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ)
    assert info.value.setting == setting
    for fragment in fragments:
        assert fragment in str(info.value)
