"""EMAIL_URL: what each URL stands for, and errors that never show a piece of its password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailroom.config import (
    SECRET_SETTINGS,
    Backend,
    Settings,
    load_settings,
    load_settings_report,
)
from mailroom.errors import SettingsError
from support.settings_checks import (
    PASSWORD,
    WriteFile,
    assert_settings_error_hides_password,
)

# Letters rare in English words and no digits (settings hold numbers like 5000000), so that no
# 4-character piece of a password can occur in an error message by chance; the specials are
# those that break a URL when left unencoded.
_PASSWORD_ALPHABET = "qxzjQXZJ" + "/?#@:[]%&=+;!$"


_DEFAULTS = repr(Settings())
"""What is shown with nothing set: a piece of it (":///" of the default DATABASE_URL) is no leak
even when the password holds it."""


def _pieces(password: str) -> set[str]:
    pieces = {password[i : i + 4] for i in range(len(password) - 3)}
    return {piece for piece in pieces if piece not in _DEFAULTS}


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


def test_file_url_sets_the_path() -> None:
    settings = load_settings(environ={"EMAIL_URL": "file:///var/spool/mail%20room"})
    assert settings.EMAIL_BACKEND is Backend.FILE
    assert Path("/var/spool/mail room") == settings.EMAIL_FILE_PATH
    assert settings.source_of("EMAIL_FILE_PATH") == "EMAIL_URL in environment"


def test_file_url_without_path_keeps_default_path() -> None:
    settings = load_settings(environ={"EMAIL_URL": "file://"})
    assert settings.EMAIL_BACKEND is Backend.FILE
    assert Path("mailroom-mail") == settings.EMAIL_FILE_PATH


def test_url_error_names_the_settings_file(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_URL = "smtp://h.example?bogus=1"\n')
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ={})
    assert info.value.setting == "EMAIL_URL"
    assert str(path) in str(info.value)


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


@pytest.mark.parametrize(
    ("url", "fragments", "absent"),
    [
        ("sendgrid://key@api", ["'sendgrid'", "environment", "smtp://"], []),
        # The option is never echoed: it could be part of a password.
        (
            "smtp://h.example?starttls=true",
            ["unknown option", "tls, ssl and timeout"],
            ["starttls"],
        ),
        ("smtp://h.example:smtp", ["port"], []),
    ],
    ids=["unknown-scheme", "unknown-option", "bad-port"],
)
def test_a_url_that_cannot_be_used_is_an_error(
    url: str, fragments: list[str], absent: list[str]
) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"EMAIL_URL": url})
    assert info.value.setting == "EMAIL_URL"
    for fragment in fragments:
        assert fragment in str(info.value)
    for fragment in absent:
        assert fragment not in str(info.value)
