"""The transport: MAILROOM_TRANSPORT, EMAIL_BACKEND (its older name, Django's dotted names too),
or what EMAIL_URL and EMAIL_HOST imply."""

from __future__ import annotations

import re

import pytest

import mailroom
from mailroom.config import (
    Backend,
    TransportName,
    load_settings,
    load_settings_report,
)
from mailroom.errors import SettingsError, TransportSetupError
from mailroom.message import Envelope
from mailroom.transports import (
    CaptureTransport,
    ConsoleTransport,
    FileTransport,
    MemoryTransport,
    NullTransport,
    SMTPTransport,
    Transport,
    transport_from_settings,
)
from support.settings_checks import (
    WriteFile,
)


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("console://", Backend.CONSOLE),
        ("memory://", Backend.MEMORY),
        ("null://", Backend.NULL),
        ("capture://", Backend.CAPTURE),
        ("file:///var/spool/mailroom", Backend.FILE),
    ],
)
def test_non_smtp_urls(url: str, backend: Backend) -> None:
    settings = load_settings(environ={"EMAIL_URL": url})
    assert settings.EMAIL_BACKEND is backend
    assert settings.source_of("EMAIL_BACKEND") == "EMAIL_URL in environment"


def test_console_url_does_not_imply_smtp_from_other_settings() -> None:
    settings = load_settings(environ={"EMAIL_URL": "console://", "EMAIL_HOST": "h.example"})
    assert settings.EMAIL_BACKEND is Backend.CONSOLE


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
    assert "smtp, console, file, memory, null, capture" in message
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


# --- MAILROOM_TRANSPORT, the transport's own name ------------------------------------------


@pytest.mark.parametrize(
    ("name", "transport"),
    [
        ("smtp", TransportName.SMTP),
        ("SMTP", TransportName.SMTP),
        (" console ", TransportName.CONSOLE),
        ("file", TransportName.FILE),
        ("memory", TransportName.MEMORY),
        ("null", TransportName.NULL),
    ],
)
def test_mailroom_transport_names(name: str, transport: TransportName) -> None:
    settings = load_settings(environ={"MAILROOM_TRANSPORT": name})
    assert settings.MAILROOM_TRANSPORT is transport
    assert settings.EMAIL_BACKEND is transport
    assert settings.source_of("MAILROOM_TRANSPORT") == "environment"
    assert settings.source_of("EMAIL_BACKEND") == "MAILROOM_TRANSPORT in environment"


def test_mailroom_transport_in_settings_file_and_overrides(write: WriteFile) -> None:
    path = write("c.toml", 'mailroom_transport = "null"\nEMAIL_HOST = "relay.example"\n')
    settings = load_settings(config_path=path, environ={})
    assert settings.MAILROOM_TRANSPORT is TransportName.NULL  # EMAIL_HOST implies nothing
    assert settings.source_of("MAILROOM_TRANSPORT") == str(path)
    settings = load_settings(config_path=path, environ={}, mailroom_transport="memory")
    assert settings.MAILROOM_TRANSPORT is TransportName.MEMORY
    assert settings.source_of("MAILROOM_TRANSPORT") == "overrides"


@pytest.mark.parametrize(
    ("name", "transport"),
    [
        ("file", TransportName.FILE),
        ("django.core.mail.backends.filebased.EmailBackend", TransportName.FILE),
        ("django.core.mail.backends.dummy.EmailBackend", TransportName.NULL),
    ],
)
def test_email_backend_still_names_the_transport(name: str, transport: TransportName) -> None:
    settings = load_settings(environ={"EMAIL_BACKEND": name})
    assert settings.MAILROOM_TRANSPORT is transport
    assert settings.source_of("MAILROOM_TRANSPORT") == "EMAIL_BACKEND in environment"
    assert settings.source_of("EMAIL_BACKEND") == "environment"


@pytest.mark.parametrize(
    ("given", "hint"),
    [
        ("smpt", "did you mean smtp?"),
        # Django's dotted names are EMAIL_BACKEND's; MAILROOM_TRANSPORT says what they mean.
        ("django.core.mail.backends.smtp.EmailBackend", "that is Django's name for smtp"),
    ],
)
def test_unknown_mailroom_transport_is_an_error(given: str, hint: str) -> None:
    expected = (
        f"MAILROOM_TRANSPORT: unknown transport {given!r} (environment); "
        f"choose one of smtp, console, file, memory, null, capture; {hint}"
    )
    with pytest.raises(SettingsError, match=f"^{re.escape(expected)}$"):
        load_settings(environ={"MAILROOM_TRANSPORT": given})


@pytest.mark.parametrize(
    ("file_text", "environ", "overrides", "sources"),
    [
        ("", {"MAILROOM_TRANSPORT": "smtp", "EMAIL_BACKEND": "console"}, {}, ["environment"] * 2),
        (
            'MAILROOM_TRANSPORT = "smtp"\n'
            'EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"\n',
            {},
            {},
            ["{path}"] * 2,
        ),
        ("", {}, {"MAILROOM_TRANSPORT": "null", "EMAIL_BACKEND": "smtp"}, ["overrides"] * 2),
    ],
    ids=["environment", "settings-file", "overrides"],
)
def test_both_names_disagreeing_in_one_layer_is_an_error_naming_both(
    write: WriteFile,
    file_text: str,
    environ: dict[str, str],
    overrides: dict[str, str],
    sources: list[str],
) -> None:
    path = write("c.toml", file_text)
    with pytest.raises(SettingsError) as info:
        load_settings(config_path=path, environ=environ, **overrides)
    assert info.value.setting == "MAILROOM_TRANSPORT"
    message = str(info.value)
    mine, older = (source.format(path=path) for source in sources)
    assert f"({mine}) but EMAIL_BACKEND is" in message
    assert f"({older}); they name the same setting, so set only MAILROOM_TRANSPORT" in message
    report = load_settings_report(config_path=path, environ=environ, **overrides)
    assert [error.setting for error in report.errors] == ["MAILROOM_TRANSPORT"]
    assert report.settings.MAILROOM_TRANSPORT is TransportName.CAPTURE  # refused: the default
    assert not report.usable("MAILROOM_TRANSPORT")


@pytest.mark.parametrize(
    ("file_text", "environ", "overrides", "transport", "sources"),
    [
        (
            'EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"\n',
            {"MAILROOM_TRANSPORT": "smtp"},
            {},
            TransportName.SMTP,
            ("environment", "MAILROOM_TRANSPORT in environment"),
        ),
        (
            'MAILROOM_TRANSPORT = "file"\n',
            {"EMAIL_BACKEND": "null"},
            {},
            TransportName.NULL,
            ("EMAIL_BACKEND in environment", "environment"),
        ),
        (
            "",
            {"EMAIL_BACKEND": "console"},
            {"MAILROOM_TRANSPORT": "null"},
            TransportName.NULL,
            ("overrides", "MAILROOM_TRANSPORT in overrides"),
        ),
        (
            # A lower layer's disagreement is not read: the higher layer has the last word.
            "",
            {"MAILROOM_TRANSPORT": "smtp", "EMAIL_BACKEND": "console"},
            {"EMAIL_BACKEND": "memory"},
            TransportName.MEMORY,
            ("EMAIL_BACKEND in overrides", "overrides"),
        ),
        (
            'EMAIL_URL = "smtp://relay.example"\n',
            {"EMAIL_BACKEND": "null"},
            {},
            TransportName.NULL,
            ("EMAIL_BACKEND in environment", "environment"),
        ),
    ],
    ids=[
        "file-older-name-environment-new-name",
        "file-new-name-environment-older-name",
        "environment-older-name-override-new-name",
        "environment-both-disagreeing-override",
        "file-email-url-environment-older-name",
    ],
)
def test_the_highest_layer_giving_either_name_wins(
    write: WriteFile,
    *,
    file_text: str,
    environ: dict[str, str],
    overrides: dict[str, str],
    transport: TransportName,
    sources: tuple[str, str],
) -> None:
    path = write("c.toml", file_text)
    settings = load_settings(config_path=path, environ=environ, **overrides)
    assert settings.MAILROOM_TRANSPORT is transport
    assert settings.source_of("MAILROOM_TRANSPORT") == sources[0]
    assert settings.source_of("EMAIL_BACKEND") == sources[1]


@pytest.mark.parametrize(
    ("file_text", "environ"),
    [
        ('EMAIL_BACKEND = "smpt"\n', {"MAILROOM_TRANSPORT": "file"}),
        ('MAILROOM_TRANSPORT = "django.core.mail.backends.smtp.EmailBackend"\n', {}),
        ("", {"EMAIL_BACKEND": "mailroom.integrations.django.EmailBackend"}),
        ("", {"MAILROOM_TRANSPORT": "file", "EMAIL_BACKEND": "smtp"}),
        # As for any other setting: a lower layer's bad EMAIL_PORT is never read either.
        ('EMAIL_PORT = "smtp"\n', {"EMAIL_PORT": "twenty-five"}),
    ],
    ids=[
        "unknown-in-file",
        "django-name-in-new-name",
        "mailrooms-django-backend",
        "disagreeing",
        "other-setting",
    ],
)
def test_a_lower_layers_refusable_value_overridden_is_not_read(
    write: WriteFile, file_text: str, environ: dict[str, str]
) -> None:
    path = write("c.toml", file_text)
    above = {"MAILROOM_TRANSPORT": "memory", "EMAIL_PORT": 2525}
    settings = load_settings(config_path=path, environ=environ, **above)
    assert settings.MAILROOM_TRANSPORT is TransportName.MEMORY
    assert load_settings_report(config_path=path, environ=environ, **above).errors == ()


@pytest.mark.parametrize(
    ("file_text", "environ", "source"),
    [
        ("", {"MAILROOM_TRANSPORT": "null", "EMAIL_BACKEND": "null"}, "environment"),
        (
            'MAILROOM_TRANSPORT = "null"\n'
            'EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"\n',
            {},
            "{path}",
        ),
    ],
    ids=["environment", "settings-file"],
)
def test_both_names_agreeing_in_one_layer_each_report_that_layer(
    write: WriteFile, file_text: str, environ: dict[str, str], source: str
) -> None:
    path = write("c.toml", file_text)
    settings = load_settings(config_path=path, environ=environ)
    assert settings.MAILROOM_TRANSPORT is TransportName.NULL
    # Each was set directly, so neither is shown as set by the other.
    assert settings.source_of("MAILROOM_TRANSPORT") == source.format(path=path)
    assert settings.source_of("EMAIL_BACKEND") == source.format(path=path)


def test_both_names_agreeing_is_fine(write: WriteFile) -> None:
    path = write("c.toml", 'EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"\n')
    settings = load_settings(config_path=path, environ={"MAILROOM_TRANSPORT": "smtp"})
    assert settings.MAILROOM_TRANSPORT is TransportName.SMTP
    # The highest layer's word is the one in use.
    assert settings.source_of("MAILROOM_TRANSPORT") == "environment"
    assert settings.source_of("EMAIL_BACKEND") == "MAILROOM_TRANSPORT in environment"


def test_an_explicit_name_beats_its_own_layers_email_url() -> None:
    settings = load_settings(environ={"EMAIL_URL": "smtp://relay.example", "EMAIL_BACKEND": "null"})
    assert settings.MAILROOM_TRANSPORT is TransportName.NULL
    assert settings.source_of("MAILROOM_TRANSPORT") == "EMAIL_BACKEND in environment"
    assert settings.EMAIL_HOST == "relay.example"  # the URL's other settings still count


@pytest.mark.parametrize("name", ["EMAIL_BACKEND", "MAILROOM_TRANSPORT"])
def test_email_url_in_a_higher_layer_beats_either_name(write: WriteFile, name: str) -> None:
    path = write("c.toml", f'{name} = "null"\n')
    settings = load_settings(config_path=path, environ={"EMAIL_URL": "smtp://relay.example"})
    assert settings.MAILROOM_TRANSPORT is TransportName.SMTP
    assert settings.source_of("MAILROOM_TRANSPORT") == "EMAIL_URL in environment"
    assert settings.source_of("EMAIL_BACKEND") == "EMAIL_URL in environment"


@pytest.mark.parametrize(
    "environ",
    [{}, {"EMAIL_HOST": "relay.example"}, {"MAILROOM_TRANSPORT": "file"}],
    ids=["alone", "with-a-relay", "with-mailroom-transport"],
)
def test_email_backend_naming_mailrooms_django_backend_is_an_error(
    environ: dict[str, str],
) -> None:
    # A Django project's EMAIL_BACKEND names no transport: passed over, it would leave a worker
    # sending to the console unnoticed. The error says which setting names the transport.
    env = {**environ, "EMAIL_BACKEND": "mailroom.integrations.django.EmailBackend"}
    expected = (
        "EMAIL_BACKEND: 'mailroom.integrations.django.EmailBackend' (environment) names "
        "Django's backend for sending through Mailroom, not a transport; name Mailroom's own "
        "transport with MAILROOM_TRANSPORT instead (smtp, console, file, memory, null, capture)"
    )
    with pytest.raises(SettingsError, match=f"^{re.escape(expected)}$"):
        load_settings(environ=env)
    report = load_settings_report(environ=env)
    assert [error.setting for error in report.errors] == ["EMAIL_BACKEND"]
    assert not report.usable("EMAIL_BACKEND")


def test_mailrooms_django_backend_in_mailroom_transport_is_named_for_what_it_is() -> None:
    with pytest.raises(SettingsError, match="names Django's backend for sending through Mailroom"):
        load_settings(environ={"MAILROOM_TRANSPORT": "mailroom.integrations.django.EmailBackend"})


@pytest.mark.parametrize(
    ("name", "transport"),
    [
        ("smtp", SMTPTransport),
        ("console", ConsoleTransport),
        ("file", FileTransport),
        ("memory", MemoryTransport),
        ("null", NullTransport),
    ],
)
def test_the_transport_named_is_the_one_built(name: str, transport: type[Transport]) -> None:
    settings = load_settings(environ={"MAILROOM_TRANSPORT": name})
    assert type(transport_from_settings(settings)) is transport


async def test_capture_is_built_around_the_sink_given() -> None:
    stored: list[Envelope] = []

    async def sink(envelope: Envelope) -> int:
        stored.append(envelope)
        return 12

    settings = load_settings(environ={"MAILROOM_TRANSPORT": "capture"})
    transport = transport_from_settings(settings, capture_sink=sink)
    assert type(transport) is CaptureTransport
    envelope = Envelope("s@example.com", ("a@example.com",), b"Subject: x\r\n\r\nx\r\n", "<1@x>")
    result = await transport.send(envelope)
    assert stored == [envelope]
    assert (result.location, result.accepted, result.transport) == (
        "captured #12",
        ("a@example.com",),
        "capture",
    )


def test_capture_without_a_sink_is_a_setup_error_naming_the_setting() -> None:
    settings = load_settings(environ={"MAILROOM_TRANSPORT": "capture"})
    with pytest.raises(TransportSetupError, match=r"^MAILROOM_TRANSPORT is capture, ") as info:
        transport_from_settings(settings)
    assert "\n" not in str(info.value)


def test_capture_is_the_default() -> None:
    settings = load_settings(environ={})
    assert settings.MAILROOM_TRANSPORT is TransportName.CAPTURE
    assert settings.source_of("MAILROOM_TRANSPORT") == "default"


def test_backend_is_the_old_name_of_transport_name() -> None:
    assert Backend is TransportName
    assert mailroom.Backend is mailroom.TransportName is TransportName
