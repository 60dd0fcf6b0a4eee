"""The settings file and the secrets file: how they are found, read and refused, and the warning
for a password kept in the shareable settings file."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

import pytest

from mailroom.config import (
    load_settings,
)
from mailroom.errors import SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_no_password,
    assert_settings_error_hides_password,
)


def test_settings_file_via_config_path(write: WriteFile) -> None:
    path = write(
        "custom.toml",
        'EMAIL_HOST = "smtp.example.com"\nEMAIL_PORT = 2525\nDEFAULT_FROM_EMAIL = "a@b.example"\n',
    )
    settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_HOST == "smtp.example.com"
    assert settings.EMAIL_PORT == 2525
    assert settings.port == 2525
    assert settings.DEFAULT_FROM_EMAIL == "a@b.example"
    assert settings.source_of("EMAIL_HOST") == str(path)
    assert settings.source_of("EMAIL_PORT") == str(path)
    assert settings.source_of("EMAIL_HOST_USER") == "default"


def test_settings_file_via_config_path_as_str(write: WriteFile) -> None:
    path = write("custom.toml", 'EMAIL_HOST = "smtp.example.com"\n')
    settings = load_settings(config_path=str(path), environ={})
    assert settings.EMAIL_HOST == "smtp.example.com"


def test_settings_file_via_mailroom_config_environ(write: WriteFile) -> None:
    path = write("elsewhere.toml", 'EMAIL_HOST = "relay.example.org"\n')
    settings = load_settings(environ={"MAILROOM_CONFIG": str(path)})
    assert settings.EMAIL_HOST == "relay.example.org"
    assert settings.source_of("EMAIL_HOST") == str(path)


def test_config_path_beats_mailroom_config(write: WriteFile) -> None:
    chosen = write("chosen.toml", 'EMAIL_HOST = "chosen.example"\n')
    ignored = write("ignored.toml", 'EMAIL_HOST = "ignored.example"\n')
    settings = load_settings(config_path=chosen, environ={"MAILROOM_CONFIG": str(ignored)})
    assert settings.EMAIL_HOST == "chosen.example"


def test_mailroom_toml_in_working_directory_is_discovered(write: WriteFile) -> None:
    path = write("mailroom.toml", 'EMAIL_HOST = "found.example"\n')
    settings = load_settings(environ={})
    assert settings.EMAIL_HOST == "found.example"
    # The file actually read, by its absolute path.
    assert settings.source_of("EMAIL_HOST") == str(path)


def test_explicit_settings_file_replaces_discovered_one(write: WriteFile) -> None:
    write("mailroom.toml", 'EMAIL_HOST = "discovered.example"\nEMAIL_PORT = 1025\n')
    other = write("other.toml", 'EMAIL_HOST = "explicit.example"\n')
    settings = load_settings(environ={"MAILROOM_CONFIG": str(other)})
    assert settings.EMAIL_HOST == "explicit.example"
    # The discovered file is not read at all, not merged underneath.
    assert settings.EMAIL_PORT is None


def test_no_settings_file_is_fine() -> None:
    assert load_settings(environ={}).source_of("EMAIL_HOST") == "default"


def test_settings_file_keys_are_case_insensitive(write: WriteFile) -> None:
    path = write("c.toml", 'email_host = "lower.example"\nEmail_Port = 2525\n')
    settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_HOST == "lower.example"
    assert settings.EMAIL_PORT == 2525


def test_settings_file_may_use_a_mailroom_table(write: WriteFile) -> None:
    path = write("c.toml", '[mailroom]\nEMAIL_HOST = "tabled.example"\n')
    assert load_settings(config_path=path, environ={}).EMAIL_HOST == "tabled.example"


def test_settings_file_typed_values(write: WriteFile) -> None:
    path = write(
        "c.toml",
        "EMAIL_USE_TLS = true\nEMAIL_TIMEOUT = 5.5\nEMAIL_MAX_MESSAGE_SIZE = 1000\n"
        'EMAIL_FILE_PATH = "/var/mail/out"\nEMAIL_LOCAL_HOSTNAME = "me.example"\n',
    )
    settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_USE_TLS is True
    assert settings.EMAIL_TIMEOUT == 5.5
    assert settings.EMAIL_MAX_MESSAGE_SIZE == 1000
    assert Path("/var/mail/out") == settings.EMAIL_FILE_PATH
    assert settings.EMAIL_LOCAL_HOSTNAME == "me.example"


def test_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=missing, environ={})
    assert info.value.setting == "MAILROOM_CONFIG"
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_missing_settings_file_named_in_environ_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_CONFIG": str(missing)})
    assert info.value.setting == "MAILROOM_CONFIG"


@pytest.mark.parametrize(
    ("text", "setting", "fragments", "absent"),
    [
        (
            "EMAIL_HOST = = nope\n",
            "MAILROOM_CONFIG",
            ["not valid TOML", "{path}", "line 1, column 14"],
            [],
        ),
        (
            'EMAIL_HOTS = "smtp.example.com"\n',
            "EMAIL_HOTS",
            ["did you mean EMAIL_HOST", "{path}"],
            [],
        ),
        ("WIBBLE = 1\n", "WIBBLE", ["unknown setting"], ["did you mean"]),
    ],
    ids=["invalid-toml", "unknown-key-near-a-name", "unknown-key-near-none"],
)
def test_a_settings_file_that_cannot_be_used_names_the_problem(
    write: WriteFile, text: str, setting: str, fragments: list[str], absent: list[str]
) -> None:
    path = write("c.toml", text)
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == setting
    for fragment in fragments:
        assert fragment.format(path=path) in str(info.value)
    for fragment in absent:
        assert fragment not in str(info.value)


def test_invalid_toml_on_the_password_line_does_not_show_the_password(write: WriteFile) -> None:
    # An unquoted password is invalid TOML; the parser's message must not quote it.
    path = write("bad.toml", f'EMAIL_HOST = "h"\nEMAIL_HOST_PASSWORD = {PASSWORD}\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert_settings_error_hides_password(info.value)


@pytest.mark.parametrize(
    "text",
    [
        f"email_password = {PASSWORD}\n",
        f"[secrets]\nemail_password = {PASSWORD}\n",
        f"\n  email_password = {PASSWORD}\n",
        f'email_password = "{PASSWORD}"\n',
        f"email_password = '{PASSWORD}'\n",
        f"EMAIL_PASSWORD = {PASSWORD}\n",
        f"email_host_password = {PASSWORD}\n",
        f"email_password: {PASSWORD}\n",
        f"# the relay's password\nemail_password = {PASSWORD}\n",
    ],
    ids=[
        "bare",
        "section",
        "leading-blank",
        "double-quoted",
        "single-quoted",
        "upper-case-key",
        "django-name",
        "colon",
        "comment",
    ],
)
def test_secrets_file_forms(write: WriteFile, text: str) -> None:
    path = write("secrets", text)
    settings = load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.source_of("EMAIL_HOST_PASSWORD") == f"secrets file {path}"


def test_secrets_file_named_by_mailroom_secrets(write: WriteFile) -> None:
    path = write("secrets", f"email_password = {PASSWORD}\n")
    settings = load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert path == settings.SECRETS_FILE
    assert settings.source_of("SECRETS_FILE") == "environment (MAILROOM_SECRETS)"
    assert settings.warnings == ()


def test_secrets_file_named_in_settings_file(write: WriteFile) -> None:
    secrets = write("secrets", f"email_password = {PASSWORD}\n")
    config = write("c.toml", f'SECRETS_FILE = "{secrets}"\nEMAIL_HOST_USER = "ada"\n')
    settings = load_settings(config_path=config, environ={})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.EMAIL_HOST_USER == "ada"
    assert secrets == settings.SECRETS_FILE
    assert settings.source_of("SECRETS_FILE") == str(config)
    assert settings.source_of("EMAIL_HOST_PASSWORD") == f"secrets file {secrets}"
    assert settings.warnings == ()


def test_mailroom_secrets_beats_secrets_file_setting(write: WriteFile) -> None:
    from_file = write("file-secrets", "email_password = from-settings-file\n")
    from_env = write("env-secrets", f"email_password = {PASSWORD}\n")
    config = write("c.toml", f'SECRETS_FILE = "{from_file}"\n')
    settings = load_settings(config_path=config, environ={"MAILROOM_SECRETS": str(from_env)})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert from_env == settings.SECRETS_FILE


def test_missing_secrets_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-secrets"
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(missing)})
    assert info.value.setting == "SECRETS_FILE"
    assert str(missing) in str(info.value)
    assert "does not exist" in str(info.value)


def test_missing_secrets_file_named_in_settings_file_is_an_error(
    write: WriteFile, tmp_path: Path
) -> None:
    config = write("c.toml", f'SECRETS_FILE = "{tmp_path / "absent"}"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=config, environ={})
    assert info.value.setting == "SECRETS_FILE"


def test_unknown_key_in_secrets_file_suggests_the_near_name(write: WriteFile) -> None:
    path = write("secrets", f"email_pasword = {PASSWORD}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert "unknown key" in str(info.value)
    assert "did you mean email_password" in str(info.value)
    assert str(path) in str(info.value)
    assert_settings_error_hides_password(info.value)


def test_relative_secrets_file_is_found_beside_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "mailroom-secrets.conf").write_text(f"email_password = {PASSWORD}\n")
    config = etc / "mailroom.toml"
    config.write_text('SECRETS_FILE = "mailroom-secrets.conf"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config_path=config, environ={})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert etc / "mailroom-secrets.conf" == settings.SECRETS_FILE


def test_secrets_file_named_by_secrets_file_in_the_environment(write: WriteFile) -> None:
    path = write("secrets", f"email_password = {PASSWORD}\n")
    settings = load_settings(environ={"SECRETS_FILE": str(path)})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.source_of("SECRETS_FILE") == "environment"


def test_password_in_settings_file_warns_without_showing_it(
    write: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    path = write("c.toml", f'EMAIL_HOST = "h.example"\nEMAIL_HOST_PASSWORD = "{PASSWORD}"\n')
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert len(settings.warnings) == 1
    warning = settings.warnings[0]
    assert str(path) in warning
    assert "secrets file" in warning
    assert "EMAIL_HOST_PASSWORD" in warning
    records = [r for r in caplog.records if r.name == "mailroom.config"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == warning
    assert_no_password(warning, caplog.text, *(r.getMessage() for r in caplog.records))


def test_password_in_url_in_settings_file_warns_without_showing_it(
    write: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"smtp://ada:{quote(PASSWORD, safe='')}@h.example:587?tls=true"
    path = write("c.toml", f'EMAIL_URL = "{url}"\n')
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert len(settings.warnings) == 1
    assert str(path) in settings.warnings[0]
    assert any(r.name == "mailroom.config" for r in caplog.records)
    assert_no_password(settings.warnings[0], caplog.text)


def test_no_warning_when_url_in_settings_file_has_no_password(
    write: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    path = write("c.toml", 'EMAIL_URL = "smtp://ada@h.example:587"\n')
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        settings = load_settings(config_path=path, environ={})
    assert settings.warnings == ()
    assert not [r for r in caplog.records if r.name == "mailroom.config"]


def test_no_warning_for_password_from_secrets_file_or_environment(
    write: WriteFile, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = write("secrets", f"email_password = {PASSWORD}\n")
    config = write("c.toml", f'EMAIL_HOST = "h.example"\nSECRETS_FILE = "{secrets}"\n')
    with caplog.at_level(logging.WARNING, logger="mailroom.config"):
        from_secrets = load_settings(config_path=config, environ={})
        from_env = load_settings(environ={"EMAIL_HOST_PASSWORD": PASSWORD})
        from_env_url = load_settings(
            environ={"EMAIL_URL": f"smtp://a:{quote(PASSWORD, safe='')}@h.example"}
        )
    assert from_secrets.warnings == ()
    assert from_env.warnings == ()
    assert from_env_url.warnings == ()
    assert not [r for r in caplog.records if r.name == "mailroom.config"]


def test_empty_password_in_settings_file_does_not_warn(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_HOST_PASSWORD = ""\n')
    assert load_settings(config_path=path, environ={}).warnings == ()


def test_relative_settings_path_is_named_absolute_in_errors_and_sources(
    write: WriteFile, tmp_path: Path
) -> None:
    write("mailroom.toml", 'EMAIL_HOTS = "x"\n')
    with pytest.raises(SettingsError) as info:
        load_settings("mailroom.toml", environ={})
    assert str(tmp_path / "mailroom.toml") in str(info.value)
    with pytest.raises(SettingsError, match="does not exist") as missing:
        load_settings("nowhere.toml", environ={})
    assert str(tmp_path / "nowhere.toml") in str(missing.value)


def test_settings_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(
        'EMAIL_HOST = "h"\nDEFAULT_FROM_EMAIL = "Zoë <z@x.example>"\n'.encode("latin-1")
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ={})
    assert info.value.setting == "MAILROOM_CONFIG"
    assert f"settings file {path} is not UTF-8 text (line 2)" in str(info.value)
    assert info.value.__context__ is None or not isinstance(info.value.__context__, UnicodeError)


def test_secrets_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "secrets.conf"
    path.write_bytes("email_password = Tr0ub4dor-\xe9\n".encode("latin-1"))
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert f"{path} is not UTF-8 text (line 1)" in str(info.value)
    assert_settings_error_hides_password(info.value)


def test_settings_file_that_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="is a folder, not a file") as info:
        load_settings(tmp_path, environ={})
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        # A Docker/Kubernetes-style secret file: the bare value, no key. Not "key = value".
        (f"{PASSWORD}\n", ["key = value"]),
        # "Tr0ub4dor:rest" parses as key "tr0ub4dor" = "rest"; the key is part of the password.
        ("Tr0ub4dor:-&-3-unique\n", []),
        ("Tr0ub4dor=-&-3-unique\n", []),
        (f"[secrets]\nemail_password = x\n{PASSWORD}\n", []),
        (f"email_password = {PASSWORD}\nemail_password = {PASSWORD}\n", []),
    ],
    ids=[
        "only-the-password",
        "bare-password-with-colon",
        "bare-password-with-equals",
        "malformed-after-a-section",
        "duplicate-key",
    ],
)
def test_a_secrets_file_that_cannot_be_read_does_not_show_the_password(
    write: WriteFile, text: str, fragments: list[str]
) -> None:
    path = write("secrets", text)
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    for fragment in fragments:
        assert fragment in str(info.value)
    assert_settings_error_hides_password(info.value)
    assert info.value.__cause__ is None


def test_settings_file_declares_notification_types_as_tables(write: WriteFile) -> None:
    path = write(
        "types.toml",
        '[notification_types."task.assigned"]\n'
        'template = "task_assigned"\n'
        'stream = "bulk"\n'
        "default_on = false\n"
        'description = "A task was assigned to you"\n'
        '[notification_types."account.password_reset"]\n'
        'template = "reset"\n'
        "may_opt_out = false\n",
    )
    types = load_settings(config_path=path, environ={}).NOTIFICATION_TYPES
    assert set(types) == {"task.assigned", "account.password_reset"}
    assigned = types["task.assigned"]
    assert (assigned.template, assigned.stream, assigned.default_on, assigned.may_opt_out) == (
        "task_assigned",
        "bulk",
        False,
        True,
    )
    assert assigned.description == "A task was assigned to you"
    assert types["account.password_reset"].may_opt_out is False


def test_a_notification_type_table_with_an_unknown_key_names_the_setting(
    write: WriteFile,
) -> None:
    path = write(
        "types.toml", '[notification_types."task.assigned"]\ntemplate = "t"\nstreem = "bulk"\n'
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(config_path=path, environ={})
    assert caught.value.setting == "NOTIFICATION_TYPES"
    assert '"task.assigned".streem: Extra inputs are not permitted' in str(caught.value)
