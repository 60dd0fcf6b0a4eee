"""Loading as a whole: validation errors that never echo a secret, and the report that
collects every problem for ``config show`` and ``status``."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mailroom.config import (
    load_settings,
    load_settings_report,
)
from mailroom.errors import SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_no_password,
    assert_settings_error_hides_password,
)


def test_invalid_password_type_keeps_no_trace_of_it_in_the_exception_chain(
    write: WriteFile,
) -> None:
    config = write("c.toml", 'EMAIL_HOST_PASSWORD = ["' + PASSWORD + '"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=config, environ={})
    seen: BaseException | None = info.value
    while seen is not None:
        assert PASSWORD not in f"{seen} {seen!r}"
        seen = seen.__cause__ or seen.__context__


@pytest.mark.parametrize("value", ["12345", "true", "[1, 2]", "{ a = 1 }"])
def test_invalid_password_type_does_not_show_it(write: WriteFile, value: str) -> None:
    path = write("c.toml", f"EMAIL_HOST_PASSWORD = {value}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_HOST_PASSWORD"
    assert f"from {path}" in str(info.value)
    assert value not in str(info.value).replace(str(path), "")
    assert info.value.__cause__ is None


def test_invalid_password_type_with_distinctive_value_does_not_show_it(
    write: WriteFile,
) -> None:
    path = write("c.toml", f'EMAIL_HOST_PASSWORD = ["{PASSWORD}"]\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_HOST_PASSWORD"
    assert_settings_error_hides_password(info.value)


def test_other_validation_errors_do_not_show_the_password(write: WriteFile) -> None:
    secrets = write("secrets", f"email_password = {PASSWORD}\n")
    for environ in (
        {"MAILROOM_SECRETS": str(secrets), "EMAIL_PORT": "nope"},
        {"MAILROOM_SECRETS": str(secrets), "EMAIL_PORT": "0"},
        {"MAILROOM_SECRETS": str(secrets), "EMAIL_BACKEND": "smpt"},
        {"MAILROOM_SECRETS": str(secrets), "EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"},
        {"EMAIL_URL": f"smtp://a:{quote(PASSWORD, safe='')}@h.example?bogus=1"},
        {"EMAIL_URL": f"smtp://a:{quote(PASSWORD, safe='')}@h.example:99999"},
        {"EMAIL_URL": f"smtp://a:{quote(PASSWORD, safe='')}@h.example:465?tls=1"},
        {"EMAIL_URL": f"smtps://a:{quote(PASSWORD, safe='')}@h.example?tls=1"},
        {"EMAIL_URL": f"ftp://a:{quote(PASSWORD, safe='')}@h.example"},
    ):
        with pytest.raises(SettingsError) as info:
            load_settings(environ=environ)
        assert_settings_error_hides_password(info.value)


def test_report_collects_every_problem_and_keeps_the_values(write: WriteFile) -> None:
    path = write(
        "c.toml",
        'EMAIL_USE_TLS = true\nEMAIL_USE_SSL = true\nEMAIL_PORT = "smtp"\n'
        'EMAIL_HOTS = "x"\nDATABASE_URL = "sqlite:///queue.db"\n',
    )
    env = {"EMAIL_BACKEND": "carrier-pigeon", "WORKER_CONCURRENCY": "0"}
    report = load_settings_report(path, environ=env)
    assert [e.setting for e in report.errors] == [
        "EMAIL_HOTS",
        "EMAIL_BACKEND",
        "EMAIL_PORT",
        "EMAIL_USE_TLS",
        "WORKER_CONCURRENCY",
    ]
    settings = report.settings
    assert settings.EMAIL_USE_TLS is True
    assert settings.EMAIL_USE_SSL is True
    assert settings.source_of("EMAIL_USE_SSL") == str(path)
    assert settings.DATABASE_URL == "sqlite:///queue.db"
    assert report.rejected == {"EMAIL_PORT": "smtp"}
    assert settings.EMAIL_PORT is None  # refused, so left at its default
    assert report.usable("DATABASE_URL")
    assert not report.usable("EMAIL_USE_TLS")
    # load_settings itself is as strict as ever: the first problem is raised.
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ=env)
    assert info.value.setting == "EMAIL_HOTS"


def test_report_of_good_settings_has_no_errors() -> None:
    report = load_settings_report(environ={"EMAIL_HOST": "relay.example"})
    assert report.errors == ()
    assert report.settings.EMAIL_HOST == "relay.example"


def test_report_of_an_unreadable_settings_file_trusts_no_value_it_could_set(
    write: WriteFile,
) -> None:
    path = write("c.toml", "DATABASE_URL = \n")
    report = load_settings_report(path, environ={})
    assert [e.setting for e in report.errors] == ["MAILROOM_CONFIG"]
    assert not report.usable("DATABASE_URL")


def test_report_never_shows_a_refused_secret() -> None:
    report = load_settings_report(
        environ={"EMAIL_HOST_PASSWORD": PASSWORD, "SECRET_KEY": "short-Tr0ub4dor"}
    )
    assert [e.setting for e in report.errors] == ["SECRET_KEY"]
    assert_no_password(repr(report), *(str(e) for e in report.errors))
