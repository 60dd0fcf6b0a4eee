"""Settings: layers and precedence, EMAIL_URL, validation, and keeping the password secret.

Every test passes ``environ=`` explicitly and runs in an empty working directory, so neither the
real environment nor a ``mailroom.toml`` lying around can leak in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from mailroom import config as config_module
from mailroom.config import (
    SECRET_SETTINGS,
    Backend,
    Settings,
    load_settings,
    load_settings_report,
    redact_url,
    url_secrets,
)
from mailroom.errors import MailroomError, SettingsError

PASSWORD = "Tr0ub4dor-&-3-unique"

WriteFile = Callable[[str, str], Path]


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in an empty directory, so ./mailroom.toml discovery is under our control."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert quote(PASSWORD, safe="") not in text
        # Nor a recognisable piece of it.
        assert "Tr0ub4dor" not in text
        assert "tr0ub4dor" not in text


def assert_settings_error_hides_password(exc: SettingsError) -> None:
    assert_no_password(str(exc), repr(exc), exc.setting, *(str(a) for a in exc.args))


# --- defaults ------------------------------------------------------------------------------


def test_defaults_with_nothing_set() -> None:
    settings = load_settings(environ={})
    assert settings.EMAIL_BACKEND is Backend.CONSOLE
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


# --- the settings file ---------------------------------------------------------------------


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


def test_invalid_toml_is_an_error(write: WriteFile) -> None:
    path = write("bad.toml", "EMAIL_HOST = = nope\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "MAILROOM_CONFIG"
    assert "not valid TOML" in str(info.value)
    assert str(path) in str(info.value)
    assert "line 1, column 14" in str(info.value)


def test_invalid_toml_on_the_password_line_does_not_show_the_password(write: WriteFile) -> None:
    # An unquoted password is invalid TOML; the parser's message must not quote it.
    path = write("bad.toml", f'EMAIL_HOST = "h"\nEMAIL_HOST_PASSWORD = {PASSWORD}\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert_settings_error_hides_password(info.value)


def test_unknown_key_in_settings_file_suggests_the_near_name(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_HOTS = "smtp.example.com"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_HOTS"
    assert "did you mean EMAIL_HOST" in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_key_in_settings_file_without_a_near_name(write: WriteFile) -> None:
    path = write("c.toml", "WIBBLE = 1\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "WIBBLE"
    assert "unknown setting" in str(info.value)
    assert "did you mean" not in str(info.value)


# --- the secrets file ----------------------------------------------------------------------


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


def test_secrets_file_holding_only_the_password_does_not_show_it(write: WriteFile) -> None:
    # A Docker/Kubernetes-style secret file: the bare value, no key. Not "key = value".
    path = write("secrets", f"{PASSWORD}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert "key = value" in str(info.value)
    assert_settings_error_hides_password(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("delimiter", [":", "="])
def test_bare_password_containing_a_delimiter_does_not_show_it(
    write: WriteFile, delimiter: str
) -> None:
    # "Tr0ub4dor:rest" parses as key "tr0ub4dor" = "rest"; the key is part of the password.
    path = write("secrets", f"Tr0ub4dor{delimiter}-&-3-unique\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert_settings_error_hides_password(info.value)


def test_malformed_secrets_file_after_a_section_does_not_show_the_password(
    write: WriteFile,
) -> None:
    path = write("secrets", f"[secrets]\nemail_password = x\n{PASSWORD}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert_settings_error_hides_password(info.value)


def test_duplicate_key_in_secrets_file_does_not_show_the_password(write: WriteFile) -> None:
    path = write("secrets", f"email_password = {PASSWORD}\nemail_password = {PASSWORD}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert info.value.setting == "SECRETS_FILE"
    assert_settings_error_hides_password(info.value)


# --- precedence ----------------------------------------------------------------------------


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


# --- EMAIL_URL -----------------------------------------------------------------------------


def test_smtp_url_with_everything() -> None:
    settings = load_settings(
        environ={"EMAIL_URL": "smtp://ada:s3cret@mail.example.com:587?tls=true"}
    )
    assert settings.EMAIL_BACKEND is Backend.SMTP
    assert settings.EMAIL_HOST == "mail.example.com"
    assert settings.EMAIL_PORT == 587
    assert settings.EMAIL_HOST_USER == "ada"
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == "s3cret"
    assert settings.EMAIL_USE_TLS is True
    assert settings.EMAIL_USE_SSL is False
    for name in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS"):
        assert settings.source_of(name) == "EMAIL_URL in environment"


def test_smtps_url_implies_ssl_and_port_465() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtps://ada:s3cret@mail.example.com"})
    assert settings.EMAIL_BACKEND is Backend.SMTP
    assert settings.EMAIL_USE_SSL is True
    assert settings.EMAIL_USE_TLS is False
    assert settings.EMAIL_PORT is None
    assert settings.port == 465


def test_smtp_url_with_tls_and_no_port_uses_587() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtp://mail.example.com?tls=1"})
    assert settings.port == 587


def test_submission_scheme_is_smtp() -> None:
    settings = load_settings(environ={"EMAIL_URL": "submission://mail.example.com:587?tls=yes"})
    assert settings.EMAIL_BACKEND is Backend.SMTP
    assert settings.EMAIL_USE_TLS is True


def test_url_scheme_is_case_insensitive() -> None:
    settings = load_settings(environ={"EMAIL_URL": "SMTPS://mail.example.com"})
    assert settings.EMAIL_USE_SSL is True


def test_smtp_url_timeout_and_ssl_options() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtp://h.example?ssl=true&timeout=7.5"})
    assert settings.EMAIL_USE_SSL is True
    assert settings.EMAIL_TIMEOUT == 7.5


def test_smtp_url_percent_encoded_user_and_password() -> None:
    user = "ada@example.com"
    url = f"smtp://{quote(user, safe='')}:{quote(PASSWORD, safe='')}@mail.example.com:587"
    settings = load_settings(environ={"EMAIL_URL": url})
    assert user == settings.EMAIL_HOST_USER
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == PASSWORD
    assert settings.EMAIL_HOST == "mail.example.com"


def test_smtp_url_password_with_reserved_characters_encoded() -> None:
    password = "p/ss?w#rd:@x"
    url = f"smtp://ada:{quote(password, safe='')}@mail.example.com:587"
    settings = load_settings(environ={"EMAIL_URL": url})
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == password
    assert settings.EMAIL_PORT == 587


def test_smtp_url_without_credentials_leaves_them_unset() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtp://mail.example.com"})
    assert settings.EMAIL_HOST_USER == ""
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == ""
    assert settings.source_of("EMAIL_HOST_USER") == "default"


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("console://", Backend.CONSOLE),
        ("memory://", Backend.MEMORY),
        ("null://", Backend.NULL),
        ("file:///var/spool/mailroom", Backend.FILE),
    ],
)
def test_non_smtp_urls(url: str, backend: Backend) -> None:
    settings = load_settings(environ={"EMAIL_URL": url})
    assert settings.EMAIL_BACKEND is backend
    assert settings.source_of("EMAIL_BACKEND") == "EMAIL_URL in environment"


def test_file_url_sets_the_path() -> None:
    settings = load_settings(environ={"EMAIL_URL": "file:///var/spool/mail%20room"})
    assert settings.EMAIL_BACKEND is Backend.FILE
    assert Path("/var/spool/mail room") == settings.EMAIL_FILE_PATH
    assert settings.source_of("EMAIL_FILE_PATH") == "EMAIL_URL in environment"


def test_file_url_without_path_keeps_default_path() -> None:
    settings = load_settings(environ={"EMAIL_URL": "file://"})
    assert settings.EMAIL_BACKEND is Backend.FILE
    assert Path("mailroom-mail") == settings.EMAIL_FILE_PATH


def test_console_url_does_not_imply_smtp_from_other_settings() -> None:
    settings = load_settings(environ={"EMAIL_URL": "console://", "EMAIL_HOST": "h.example"})
    assert settings.EMAIL_BACKEND is Backend.CONSOLE


def test_unknown_url_scheme_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": "sendgrid://key@api"})
    assert info.value.setting == "EMAIL_URL"
    assert "'sendgrid'" in str(info.value)
    assert "environment" in str(info.value)
    assert "smtp://" in str(info.value)


def test_unknown_url_option_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": "smtp://h.example?starttls=true"})
    assert info.value.setting == "EMAIL_URL"
    assert "unknown option" in str(info.value)
    assert "starttls" not in str(info.value)  # never echoed: it could be part of a password
    assert "tls, ssl and timeout" in str(info.value)


def test_url_error_names_the_settings_file(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_URL = "smtp://h.example?bogus=1"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_URL"
    assert str(path) in str(info.value)


def test_url_with_bad_port_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": "smtp://h.example:smtp"})
    assert info.value.setting == "EMAIL_URL"
    assert "port" in str(info.value)


@pytest.mark.parametrize("separator", ["/", "?", "#"])
def test_url_with_unencoded_reserved_character_in_password_does_not_show_it(
    separator: str,
) -> None:
    # Unencoded, the separator ends the authority; "user:Tr0ub4dor" then reads as host:port and
    # the parser's complaint about the "port" would quote the password.
    url = f"smtp://ada:Tr0ub4dor{separator}-&-3-unique@mail.example.com:587"
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": url})
    assert info.value.setting == "EMAIL_URL"
    assert "percent-encoded" in str(info.value)
    assert_settings_error_hides_password(info.value)


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


# --- EMAIL_BACKEND -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "backend"),
    [
        ("django.core.mail.backends.smtp.EmailBackend", Backend.SMTP),
        ("django.core.mail.backends.console.EmailBackend", Backend.CONSOLE),
        ("django.core.mail.backends.filebased.EmailBackend", Backend.FILE),
        ("django.core.mail.backends.locmem.EmailBackend", Backend.MEMORY),
        ("django.core.mail.backends.dummy.EmailBackend", Backend.NULL),
        ("smtp", Backend.SMTP),
        ("SMTP", Backend.SMTP),
        (" console ", Backend.CONSOLE),
        ("file", Backend.FILE),
        ("memory", Backend.MEMORY),
        ("null", Backend.NULL),
    ],
)
def test_backend_names(name: str, backend: Backend) -> None:
    settings = load_settings(environ={"EMAIL_BACKEND": name})
    assert settings.EMAIL_BACKEND is backend
    assert settings.source_of("EMAIL_BACKEND") == "environment"


def test_django_backend_name_in_settings_file(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"\n')
    assert load_settings(config_path=path, environ={}).EMAIL_BACKEND is Backend.MEMORY


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_BACKEND": "smpt"})
    assert info.value.setting == "EMAIL_BACKEND"
    message = str(info.value)
    assert "'smpt'" in message
    assert "environment" in message
    assert "smtp, console, file, memory, null" in message
    assert "did you mean smtp" in message


def test_unknown_django_backend_is_an_error() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_BACKEND": "anymail.backends.mailgun.EmailBackend"})
    assert info.value.setting == "EMAIL_BACKEND"


def test_email_host_implies_smtp_backend(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_HOST = "relay.example"\n')
    settings = load_settings(config_path=path, environ={})
    assert settings.EMAIL_BACKEND is Backend.SMTP
    assert settings.source_of("EMAIL_BACKEND") == f"implied by EMAIL_HOST ({path})"


def test_email_host_does_not_override_an_explicit_backend() -> None:
    settings = load_settings(environ={"EMAIL_HOST": "relay.example", "EMAIL_BACKEND": "console"})
    assert settings.EMAIL_BACKEND is Backend.CONSOLE


def test_backend_in_file_with_host_in_environment_stays(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_BACKEND = "null"\n')
    settings = load_settings(config_path=path, environ={"EMAIL_HOST": "relay.example"})
    assert settings.EMAIL_BACKEND is Backend.NULL


# --- ports ---------------------------------------------------------------------------------


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


# --- noreply -------------------------------------------------------------------------------


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


# --- validation ----------------------------------------------------------------------------


def test_tls_and_ssl_both_on() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"})
    assert info.value.setting == "EMAIL_USE_TLS"
    assert "mutually exclusive" in str(info.value)
    assert "EMAIL_USE_SSL" in str(info.value)


def test_smtps_url_with_tls_option_is_both_on() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": "smtps://h.example?tls=true"})
    assert info.value.setting == "EMAIL_USE_TLS"


def test_port_465_with_starttls() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_PORT": "465", "EMAIL_USE_TLS": "true"})
    assert info.value.setting == "EMAIL_USE_TLS"
    assert "EMAIL_USE_SSL" in str(info.value)
    assert "implicit TLS" in str(info.value)


def test_port_465_via_url_with_tls_option() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": "smtp://h.example:465?tls=true"})
    assert info.value.setting == "EMAIL_USE_TLS"
    assert "EMAIL_USE_SSL" in str(info.value)


@pytest.mark.parametrize("port", ["0", "70000", "65536", "-1"])
def test_port_out_of_range(port: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_PORT": port})
    assert info.value.setting == "EMAIL_PORT"
    assert port in str(info.value)
    assert "1 to 65535" in str(info.value)


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


def test_invalid_boolean_names_setting() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_USE_TLS": "perhaps"})
    assert info.value.setting == "EMAIL_USE_TLS"
    assert "'perhaps'" in str(info.value)


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_non_positive_timeout(timeout: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_TIMEOUT": timeout})
    assert info.value.setting == "EMAIL_TIMEOUT"


def test_non_positive_max_message_size() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_MAX_MESSAGE_SIZE": "0"})
    assert info.value.setting == "EMAIL_MAX_MESSAGE_SIZE"


def test_keyfile_without_certfile() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_SSL_KEYFILE": "/etc/ssl/key.pem"})
    assert info.value.setting == "EMAIL_SSL_CERTFILE"


def test_settings_error_is_a_value_error_and_mailroom_error() -> None:
    with pytest.raises(ValueError, match="EMAIL_PORT") as info:
        load_settings(environ={"EMAIL_PORT": "0"})
    assert isinstance(info.value, MailroomError)


# --- the password stays secret -------------------------------------------------------------


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


# --- notification settings -----------------------------------------------------------------

SECRET_KEY_VALUE = "k3y-Th4t-Must-N3ver-Show-0123456789abcdef"


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


def test_address_lists_from_environment_file_and_django_pairs(write: WriteFile) -> None:
    env = {"ADMINS": 'Ada Lovelace <ada@example.com>, "Hopper, Grace" <grace@example.com>'}
    assert load_settings(environ=env).ADMINS == (
        "Ada Lovelace <ada@example.com>",
        "Hopper, Grace <grace@example.com>",
    )
    path = write(
        "c.toml",
        'ADMINS = [["Ada", "ada@example.com"], "ops@example.com"]\n'
        'EMAIL_FALLBACK_TO = ["team@example.com"]\nEMAIL_TEMPLATE_DIRS = ["a", "b"]\n',
    )
    settings = load_settings(config_path=path, environ={"EMAIL_TEMPLATE_DIRS": "x:y"})
    assert settings.ADMINS == ("Ada <ada@example.com>", "ops@example.com")
    assert settings.EMAIL_FALLBACK_TO == ("team@example.com",)
    assert (Path("x"), Path("y")) == settings.EMAIL_TEMPLATE_DIRS


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"ADMINS": "not an address"}, "ADMINS"),
        ({"EMAIL_FALLBACK_TO": "a@b.example, nope"}, "EMAIL_FALLBACK_TO"),
        ({"SERVER_EMAIL": "root"}, "SERVER_EMAIL"),
        ({"PUBLIC_BASE_URL": "http://app.example"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://app.example/?x=1"}, "PUBLIC_BASE_URL"),
        ({"FRONTEND_BASE_URL": "app.example"}, "FRONTEND_BASE_URL"),
        ({"NOTIFICATION_TYPE_HEADER": "X-Bad: header"}, "NOTIFICATION_TYPE_HEADER"),
        ({"UNSUBSCRIBE_TOKEN_MAX_AGE": "0"}, "UNSUBSCRIBE_TOKEN_MAX_AGE"),
        ({"ADD_TOKENS_TO_NOREPLY_ADDRESS": "perhaps"}, "ADD_TOKENS_TO_NOREPLY_ADDRESS"),
    ],
)
def test_bad_notification_settings_name_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ)
    assert info.value.setting == setting


def test_secret_key_from_secrets_file_is_masked(write: WriteFile) -> None:
    path = write("secrets", f"secret_key = {SECRET_KEY_VALUE}\n")
    settings = load_settings(environ={"MAILROOM_SECRETS": str(path)})
    assert settings.secret_key("sign links") == SECRET_KEY_VALUE
    assert settings.source_of("SECRET_KEY") == f"secrets file {path}"
    assert SECRET_KEY_VALUE not in repr(settings)
    assert SECRET_KEY_VALUE not in str(settings)


def test_short_or_missing_secret_key_errors_never_show_it() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"SECRET_KEY": "short-Tr0ub4dor"})
    assert info.value.setting == "SECRET_KEY"
    assert "Tr0ub4dor" not in str(info.value)
    with pytest.raises(SettingsError, match="SECRET_KEY: is needed to sign links"):
        load_settings(environ={}).secret_key("sign links")


# --- URLs never show their password --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://ada:Tr0ub4dor@db.example:5432/app",
            "postgresql://ada:***@db.example:5432/app",
        ),
        # Unencoded / ? # @ in the password: the last "@" ends the user information.
        ("postgresql://ada:Tr0/ub4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        ("postgresql://ada:Tr0?ub#4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        ("postgresql://ada:Tr0@ub4dor@db.example/app", "postgresql://ada:***@db.example/app"),
        (
            "postgresql://db.example/app?user=ada&password=Tr0ub4dor",
            "postgresql://db.example/app?user=ada&password=***",
        ),
        ("ada:Tr0ub4dor@db.example/app", "ada:***@db.example/app"),
        # Nothing secret: left alone.
        ("postgresql://ada@db.example/app", "postgresql://ada@db.example/app"),
        ("sqlite:///mailroom.db", "sqlite:///mailroom.db"),
        ("sqlite:////srv/mail@room.db", "sqlite:////srv/mail@room.db"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("postgresql://ada:Tr0@ub4dor@db.example/app", ("Tr0@ub4dor",)),
        ("postgresql://ada:Tr0?ub#4dor@db.example/app", ("Tr0?ub#4dor",)),
        ("postgresql://ada:p1@db/app?pwd=p2&x=1;secret=p3", ("p1", "p2", "p3")),
        ("postgresql://ada@db.example/app", ()),
        ("sqlite:////srv/mail@room.db", ()),
    ],
)
def test_url_secrets_are_what_redact_url_hides(url: str, hidden: tuple[str, ...]) -> None:
    assert url_secrets(url) == hidden
    for secret in hidden:
        assert secret not in redact_url(url)


def test_settings_repr_masks_the_database_password() -> None:
    url = f"postgresql://mailroom:{quote(PASSWORD, safe='')}@db.example/mailroom"
    settings = load_settings(environ={"DATABASE_URL": url})
    assert url == settings.DATABASE_URL  # the value itself is intact, for connecting
    assert "postgresql://mailroom:***@db.example/mailroom" in repr(settings)
    assert_no_password(repr(settings), str(settings))


def test_url_query_cannot_carry_the_password_into_an_error() -> None:
    # "4?timeout=Tr0ub4dor-..." unencoded: the parser reads port 4 and a query whose timeout
    # is the rest of the password; the complaint about that timeout used to quote it.
    url = f"smtp://ada:4?timeout={PASSWORD}@mail.example.com:587"
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": url})
    assert info.value.setting == "EMAIL_URL"
    assert "must be percent-encoded" in str(info.value)
    assert "EMAIL_HOST_PASSWORD" in str(info.value)
    assert_settings_error_hides_password(info.value)


def test_url_with_unencoded_hash_is_not_silently_misread() -> None:
    # "ada:25#..." used to parse as host "ada", port 25, no password: a silent wrong relay.
    with pytest.raises(SettingsError, match="EMAIL_URL: the user name or password"):
        load_settings(environ={"EMAIL_URL": "smtp://ada:25#Tr0ub4dor@mail.example.com:587"})


def test_url_with_unencoded_at_in_password_is_read() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtp://ada:p@ss@mail.example.com:587"})
    assert settings.EMAIL_HOST == "mail.example.com"
    assert settings.EMAIL_HOST_PASSWORD.get_secret_value() == "p@ss"


def test_a_password_given_as_email_url_is_not_echoed() -> None:
    with pytest.raises(SettingsError, match="is not a URL") as info:
        load_settings(environ={"EMAIL_URL": PASSWORD})
    assert_settings_error_hides_password(info.value)


# Letters rare in English words and no digits (settings hold numbers like 5000000), so that no
# 4-character piece of a password can occur in an error message by chance; the specials are
# those that break a URL when left unencoded.
_PASSWORD_ALPHABET = "qxzjQXZJ" + "/?#@:[]%&=+;!$"


def _pieces(password: str) -> set[str]:
    return {password[i : i + 4] for i in range(len(password) - 3)}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    password=st.text(alphabet=_PASSWORD_ALPHABET, min_size=4, max_size=24),
    scheme=st.sampled_from(["smtp", "smtps", "submission"]),
    options=st.sampled_from(["", "?tls=true", "?timeout=5"]),
)
def test_no_error_or_repr_shows_a_piece_of_an_unencoded_password(
    password: str, scheme: str, options: str
) -> None:
    url = f"{scheme}://ada:{password}@mail.example.com:587{options}"
    report = load_settings_report(environ={"EMAIL_URL": url})
    settings = report.settings
    shown = [str(getattr(settings, n)) for n in Settings.model_fields if n not in SECRET_SETTINGS]
    texts = [repr(report), repr(settings), str(settings), *shown, *settings.warnings]
    for error in report.errors:
        texts += [str(error), repr(error), str(error.__context__)]
    try:
        load_settings(environ={"EMAIL_URL": url})
    except SettingsError as exc:
        texts += [str(exc), repr(exc), str(exc.__context__), str(exc.__cause__)]
    for piece in _pieces(password):
        for text in texts:
            assert piece not in text, (piece, text)


# --- DATABASE_URL --------------------------------------------------------------------------


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


# --- every problem at once, for `config show` and `status` ---------------------------------


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


# --- misspelt environment variables --------------------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which variables were warned about, so each test sees its warning."""
    monkeypatch.setattr(config_module, "_warned_variables", set())


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


# --- the settings file actually read -------------------------------------------------------


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


def test_max_recipients_per_message_defaults_to_what_every_relay_takes() -> None:
    assert load_settings(environ={}).EMAIL_MAX_RECIPIENTS_PER_MESSAGE == 100
    settings = load_settings(environ={"EMAIL_MAX_RECIPIENTS_PER_MESSAGE": "1000"})
    assert settings.EMAIL_MAX_RECIPIENTS_PER_MESSAGE == 1000
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_MAX_RECIPIENTS_PER_MESSAGE": "0"})
    assert info.value.setting == "EMAIL_MAX_RECIPIENTS_PER_MESSAGE"
    assert "at least 1" in str(info.value)
