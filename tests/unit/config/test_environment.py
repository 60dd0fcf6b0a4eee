"""The environment as a layer, and the warning for a misspelt Mailroom variable."""

from __future__ import annotations

import logging

import pytest

from mailroom.config import environment as environment_module
from mailroom.config import (
    load_settings,
)
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_no_password,
)


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which variables were warned about, so each test sees its warning."""
    monkeypatch.setattr(environment_module, "_warned_variables", set())


def test_empty_environment_value_does_not_override(write: WriteFile) -> None:
    config = write("c.toml", 'EMAIL_HOST = "file.example"\n')
    settings = load_settings(config_path=config, environ={"EMAIL_HOST": ""})
    assert settings.EMAIL_HOST == "file.example"


def test_unrelated_environment_variables_are_ignored() -> None:
    settings = load_settings(environ={"EMAIL_HOTS": "x", "HOME": "/root", "email_host": "lower"})
    assert settings.EMAIL_HOST == "localhost"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("no", False)],
)
def test_boolean_from_environment(text: str, expected: bool) -> None:
    settings = load_settings(environ={"EMAIL_USE_TLS": text})
    assert settings.EMAIL_USE_TLS is expected


@pytest.mark.usefixtures("fresh_warnings")
@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("EMAIL_HOST_PASWORD", "EMAIL_HOST_PASSWORD"),
        ("EMAIL_USE_TSL", "EMAIL_USE_TLS"),
        ("MAILROOM_CONFG", "MAILROOM_CONFIG"),
        ("email_host", "EMAIL_HOST"),
    ],
)
def test_misspelt_variable_is_named_with_the_near_setting(
    variable: str, meant: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        settings = load_settings(environ={variable: PASSWORD})
        load_settings(environ={variable: PASSWORD})
    [record] = [r for r in caplog.records if variable in r.getMessage()]  # once per process
    assert f"did you mean {meant}?" in record.getMessage()
    assert_no_password(caplog.text)
    assert any(variable in warning for warning in settings.warnings)
    assert_no_password(*settings.warnings)


@pytest.mark.usefixtures("fresh_warnings")
def test_other_programs_variables_are_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    env = {"EMAIL_PROVIDER_REGION": "eu", "MAILROOM_TEST_POSTGRES_URL": "x", "EMAIL_HOST": "h"}
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        settings = load_settings(environ=env)
    assert caplog.records == []
    assert settings.warnings == ()
